"""The PDK calls a plugin server can make, with Kong's semantics: one module per PDK namespace
(as Kong's ``kong/pdk/*.lua``), each registering its methods in the PDK table
(:mod:`.table`); :func:`call` dispatches one call from a plugin server.

Sources: kong/pdk/{request,response,client,log,ip,node,router}.lua,
kong/pdk/service/{request,response}.lua, kong/pdk/private/{phases,checks}.lua and the
overrides Kong installs for external plugins in kong/runloop/plugin_servers/plugin.lua.

A PDK method either returns a value (answered with ``plugin.Step``/a typed Step) or *throws*
a Lua error (:class:`LuaError`). A Lua ``return nil, err`` is just ``None`` here: in Kong
3.9.3 kong/runloop/plugin_servers/rpc/mp_rpc.lua ``call_pdk_method`` keeps only the first
return value, so ``get_step_method`` never sees ``pdk_err`` and never answers
``plugin.StepError``. Kong does not protect ``call_pdk_method``, so a throw aborts the phase
handler: in ``access`` that is Kong's 500 "An unexpected error occurred", and the plugin
server never hears back.

The log phase runs in a timer (plugin.lua ``build_phases``): no request exists there, so
only the calls ``exposed_api`` serves from the saved data, and those that touch neither
``ngx.var`` nor ``ngx.req``/``ngx.resp``, work; the others throw (:data:`.dispatch.TIMER_SAFE`).
"""

from kong_harness.pdk import client, ctx, ip, log, nginx, node, request, response, router
from kong_harness.pdk.context import (
    MAX_HEADERS_DEFAULT,
    LuaError,
    RequestContext,
    Terminated,
    new_request_id,
)
from kong_harness.pdk.dispatch import call
from kong_harness.pdk.ip import trusted_ips_checker
from kong_harness.pdk.log import serialize
from kong_harness.pdk.request import request_header
from kong_harness.pdk.response import error_body, error_content_type
from kong_harness.pdk.service import request as service_request
from kong_harness.pdk.service import response as service_response
from kong_harness.pdk.table import PDK

#: The PDK namespaces the harness answers (``kong/pdk/*.lua``); importing them fills :data:`PDK`.
NAMESPACES = (
    client,
    ctx,
    ip,
    log,
    nginx,
    node,
    request,
    response,
    router,
    service_request,
    service_response,
)

__all__ = [
    "MAX_HEADERS_DEFAULT",
    "NAMESPACES",
    "PDK",
    "LuaError",
    "RequestContext",
    "Terminated",
    "call",
    "error_body",
    "error_content_type",
    "new_request_id",
    "request_header",
    "serialize",
    "trusted_ips_checker",
]
