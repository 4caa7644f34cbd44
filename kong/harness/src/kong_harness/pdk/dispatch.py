"""One PDK call from a plugin server: ``call_pdk_method`` in
``kong/runloop/plugin_servers/rpc/mp_rpc.lua``, and what throws in the log phase's timer."""

from __future__ import annotations

import logging
from typing import Any

from kong_harness.pdk.context import NO_REQUEST, LuaError, RequestContext
from kong_harness.pdk.log import LOG_LEVELS
from kong_harness.pdk.private.phases import ALL, check_phase
from kong_harness.pdk.table import PDK, PHASES_OF, STEP_METHODS

log = logging.getLogger("kong_harness.pdk")


# The log phase of an external plugin runs in ``ngx.timer.at`` (kong/runloop/plugin_servers/
# plugin.lua build_phases), where no request exists: lua-resty-core's ngx.var, ngx.req.* and
# ngx.resp.get_headers throw "no request found". What still works there: exposed_api's
# overrides that read the saved data (kong.log.serialize, kong.nginx.get_ctx/set_ctx,
# kong.ctx.shared.get/set, kong.request.get_headers/get_header/get_uri_captures,
# kong.response.get_status/get_headers/get_header/get_source, kong.nginx.req_start_time)
# and PDK functions that read only ngx.ctx (get_ctx_table(saved.ngx_ctx) installs the saved
# clone, so phase checks see "log"), kong.configuration or the node.
TIMER_SAFE = frozenset(
    {
        # exposed_api, from the saved data
        "kong.log.serialize",
        "kong.nginx.get_ctx",
        "kong.nginx.set_ctx",
        "kong.ctx.shared.get",
        "kong.ctx.shared.set",
        "kong.request.get_headers",
        "kong.request.get_header",
        "kong.request.get_uri_captures",
        "kong.response.get_status",
        "kong.response.get_headers",
        "kong.response.get_header",
        "kong.response.get_source",
        "kong.nginx.req_start_time",
        # kong/pdk/log.lua (ngx.log works in timers)
        "kong.log",
        *(f"kong.log.{level}" for level in LOG_LEVELS),
        # kong/pdk/request.lua get_start_time: ngx.ctx.KONG_PROCESSING_START (set in rewrite)
        "kong.request.get_start_time",
        # kong/pdk/router.lua: ngx.ctx.route / ngx.ctx.service
        "kong.router.get_route",
        "kong.router.get_service",
        # kong/pdk/node.lua get_id (shm), kong/pdk/ip.lua is_trusted (kong.configuration)
        "kong.node.get_id",
        "kong.ip.is_trusted",
        # kong/pdk/client.lua get_protocol decides itself (throws only past the route check)
        "kong.client.get_protocol",
    }
)
# kong/pdk/service/response.lua get_status/get_headers: ngx.ctx.buffered_status/_headers
# when Kong buffered the response (a plugin has a response phase), else ngx.var/ngx.resp.
_BUFFERED_ONLY = frozenset(
    {
        "kong.service.response.get_status",
        "kong.service.response.get_headers",
        "kong.service.response.get_header",
    }
)
_TIMER_ERRORS = {  # the first request access each function makes
    "kong.request.get_http_version": "no request object found",  # ngx.req.http_version (C)
}
# mp_rpc.lua must_fix: fix_raw packs the result as MessagePack binary; a nil result makes
# lua-MessagePack's packers['binary'] take #nil, which throws inside Rpc:call.
_FIX_RAW = frozenset(
    {
        "kong.request.get_raw_body",
        "kong.response.get_raw_body",
        "kong.service.response.get_raw_body",
    }
)


def _check_timer(ctx: RequestContext, method: str) -> None:
    """The log phase's timer context: what throws there (see :data:`TIMER_SAFE`)."""
    if method in TIMER_SAFE:
        return
    check_phase(ctx, PHASES_OF.get(method, ALL))  # the phase check comes first
    if method in _BUFFERED_ONLY and ctx.ngx_ctx.get("buffered_proxying"):
        return
    raise LuaError(_TIMER_ERRORS.get(method, NO_REQUEST))


def call(ctx: RequestContext, method: str, args: list[Any]) -> tuple[str, Any]:
    """Run one PDK call; answers ``(step_method, data)`` for the plugin server.

    mp_rpc.lua ``call_pdk_method`` keeps the first return value only: a ``nil, err`` result
    is a plain ``plugin.Step`` with ``None``, never ``plugin.StepError``. Raises
    :class:`LuaError` (Kong aborts the handler, no reply) or :class:`Terminated`.
    """
    fn = PDK.get(method)
    if fn is None:
        log.error("could not find pdk method: %s", method)  # mp_rpc.lua call_pdk_method
        return "plugin.Step", None
    if ctx.phase == "log":
        _check_timer(ctx, method)
    result = fn(ctx, list(args or []))
    if result is None and method in _FIX_RAW:
        raise LuaError("attempt to get length of local 'str' (a nil value)")
    return STEP_METHODS.get(method, "plugin.Step"), result
