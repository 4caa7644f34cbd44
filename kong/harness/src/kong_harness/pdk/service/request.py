"""``kong.service.request``: ``kong/pdk/service/request.lua``."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import LuaError, RequestContext
from kong_harness.pdk.private.checks import (
    normalize_header_value,
    validate_header,
    validate_headers,
)
from kong_harness.pdk.private.phases import ACCESS_REWRITE
from kong_harness.pdk.table import arg_at, pdk_method, string_arg_at


def _header_values(ctx: RequestContext, name: str, value: Any) -> list[str]:
    """A validated header's values; a ``Host`` also becomes the upstream host."""
    values = normalize_header_value(value)
    if name.lower() == "host":
        ctx.upstream_host = values[0]
    return values


# kong.service.request.*
@pdk_method("kong.service.request.set_header", ACCESS_REWRITE)
def _svc_set_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = arg_at(args, 0), arg_at(args, 1)
    validate_header(name, value)
    ctx.set_request_header(name, _header_values(ctx, name, value))


@pdk_method("kong.service.request.add_header", ACCESS_REWRITE)
def _svc_add_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = arg_at(args, 0), arg_at(args, 1)
    validate_header(name, value)
    ctx.headers.extend((name, v) for v in _header_values(ctx, name, value))


@pdk_method("kong.service.request.clear_header", ACCESS_REWRITE)
def _svc_clear_header(ctx: RequestContext, args: list[Any]) -> None:
    name = string_arg_at(args, 0, "header must be a string")
    ctx.set_request_header(name, [])


@pdk_method("kong.service.request.set_headers", ACCESS_REWRITE)
def _svc_set_headers(ctx: RequestContext, args: list[Any]) -> None:
    headers = arg_at(args, 0)
    if not isinstance(headers, dict):
        raise LuaError("headers must be a table")
    validate_headers(headers)
    for name, value in headers.items():
        ctx.set_request_header(name, _header_values(ctx, name, value))


@pdk_method("kong.service.request.set_path", ACCESS_REWRITE)
def _svc_set_path(ctx: RequestContext, args: list[Any]) -> None:
    path = string_arg_at(args, 0, "path must be a string")
    if not path.startswith("/"):
        raise LuaError("path must start with /")
    ctx.upstream_path = path


@pdk_method("kong.service.request.set_raw_query", ACCESS_REWRITE)
def _svc_set_raw_query(ctx: RequestContext, args: list[Any]) -> None:
    query = string_arg_at(args, 0, "query must be a string")
    ctx.raw_query = query


@pdk_method("kong.service.request.set_method", ACCESS_REWRITE)
def _svc_set_method(ctx: RequestContext, args: list[Any]) -> None:
    method = string_arg_at(args, 0, "method must be a string")
    if method not in (
        "GET",
        "HEAD",
        "PUT",
        "POST",
        "DELETE",
        "OPTIONS",
        "MKCOL",
        "COPY",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "LOCK",
        "UNLOCK",
        "PATCH",
        "TRACE",
    ):
        raise LuaError(f"invalid method: {method}")
    ctx.method = method
