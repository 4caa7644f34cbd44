"""``kong.client``: ``kong/pdk/client.lua``."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import NO_REQUEST, LuaError, RequestContext
from kong_harness.pdk.private.phases import ROUTER
from kong_harness.pdk.request import http_variable
from kong_harness.pdk.table import arg_at, attribute_getter, pdk_method

# kong/pdk/client.lua: get_ip is always the directly connected peer (realip_remote_addr);
# get_forwarded_ip is $remote_addr after the realip module (trusted_ips + real_ip_header).
attribute_getter("kong.client.get_ip", "peer_ip")
attribute_getter("kong.client.get_forwarded_ip", "remote_addr")


# kong.client.*
@pdk_method("kong.client.get_protocol", ROUTER)
def _client_get_protocol(ctx: RequestContext, args: list[Any]) -> str | None:
    """kong/pdk/client.lua get_protocol (AUTH_AND_LATER phases): the route's only protocol,
    else https/http by kong/tools/http.lua check_https; no route: ``nil, err`` (nil)."""
    if not ctx.route:
        return None
    protocols = ctx.route.get("protocols") or []
    if len(protocols) == 1:
        return protocols[0]
    if ctx.phase == "log":
        raise LuaError(NO_REQUEST)  # self.client.get_ip() reads ngx.var in the log timer
    if ctx.scheme.lower() == "https":
        return "https"
    if not arg_at(args, 0) or not ctx.trusted(ctx.peer_ip):
        return "http"
    proto = http_variable(ctx, "X-Forwarded-Proto")  # ngx.var.http_x_forwarded_proto
    if proto is None:
        return "http"
    if "," in proto:
        return None  # nil, "Only one X-Forwarded-Proto header allowed"
    return "https" if proto.lower() == "https" else "http"
