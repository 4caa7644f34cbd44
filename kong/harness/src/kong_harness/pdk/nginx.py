"""``kong.nginx``: ``kong/pdk/nginx.lua`` and the ``exposed_api`` overrides in
``kong/runloop/plugin_servers/plugin.lua``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kong_harness.pdk.context import RequestContext
from kong_harness.pdk.table import arg_at, attribute_getter, pdk_method

log = logging.getLogger("kong_harness.pdk")


attribute_getter("kong.nginx.req_start_time", "start_time")


@pdk_method("kong.nginx.get_ctx")
def _nginx_get_ctx(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.ngx_ctx.get(arg_at(args, 0))


@pdk_method("kong.nginx.set_ctx")
def _nginx_set_ctx(ctx: RequestContext, args: list[Any]) -> None:
    ctx.ngx_ctx[arg_at(args, 0)] = arg_at(args, 1)


def _upstream_uri(ctx: RequestContext) -> str:
    """``$upstream_uri``: '' (nginx_kong.lua ``set $upstream_uri ''``) until the router sets
    ``escape(match_t.upstream_uri)`` (kong/runloop/handler.lua access.before), then
    ``escape(path)`` after ``kong.service.request.set_path`` (kong/pdk/service/request.lua);
    handler.lua access.after appends ``?args`` once the access phase is over."""
    from kong_harness.router import escape_uri

    uri = escape_uri(ctx.upstream_path) if ctx.upstream_path else ctx.router_upstream_uri
    if ctx.phase not in ("rewrite", "access") and ctx.raw_query:
        uri += "?" + ctx.raw_query
    return uri


# The nginx variables the harness models; Kong knows many more (any $var of nginx).
NGINX_VARIABLES: dict[str, Callable[[RequestContext], str]] = {
    "upstream_uri": _upstream_uri,
    "request_method": lambda ctx: ctx.method,
}


@pdk_method("kong.nginx.get_var")
def _nginx_get_var(ctx: RequestContext, args: list[Any]) -> str | None:
    """plugin.lua exposed_api ``kong.nginx.get_var``: ``ngx.var[name]``, no phase check."""
    name = arg_at(args, 0)
    variable = NGINX_VARIABLES.get(name) if isinstance(name, str) else None
    if variable is None:
        # An unknown nginx variable is nil in Kong too; one Kong has but the harness does
        # not model must not pass for it silently.
        log.error("harness does not model nginx variable $%s: answering nil", name)
        return None
    return variable(ctx)
