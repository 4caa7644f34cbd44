"""``kong.service.response``: ``kong/pdk/service/response.lua`` (the response phase: the
upstream's answer)."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import MAX_HEADERS_DEFAULT, RequestContext
from kong_harness.pdk.private.phases import HEADER_BODY_LOG
from kong_harness.pdk.table import arg_at, pdk_method


# kong.service.response.* (response phase: the upstream's answer)
@pdk_method("kong.service.response.get_status", HEADER_BODY_LOG)
def _svc_resp_status(ctx: RequestContext, args: list[Any]) -> int | None:
    return ctx.upstream_status


@pdk_method("kong.service.response.get_headers", HEADER_BODY_LOG)
def _svc_resp_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    return ctx.multimap(ctx.upstream_headers, int(arg_at(args, 0) or MAX_HEADERS_DEFAULT))


@pdk_method("kong.service.response.get_header", HEADER_BODY_LOG)
def _svc_resp_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = str(arg_at(args, 0)).lower()
    values = [v for k, v in ctx.upstream_headers if k.lower() == name]
    return values[0] if values else None
