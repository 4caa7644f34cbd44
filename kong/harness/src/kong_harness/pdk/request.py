"""``kong.request``: ``kong/pdk/request.lua`` (and ``kong/tools/http.lua`` for headers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote_plus

from kong_harness.pdk.context import (
    MAX_HEADERS_DEFAULT,
    MAX_QUERY_ARGS_DEFAULT,
    LuaError,
    RequestContext,
)
from kong_harness.pdk.private.checks import lua_type
from kong_harness.pdk.private.phases import BEFORE_CONTENT, REQUEST
from kong_harness.pdk.table import arg_at, attribute_getter, pdk_method, string_arg_at

# kong.request.*
attribute_getter("kong.request.get_method", "method", REQUEST)
attribute_getter("kong.request.get_scheme", "scheme", REQUEST)
attribute_getter("kong.request.get_host", "host", REQUEST)
attribute_getter("kong.request.get_port", "port")
attribute_getter("kong.request.get_http_version", "http_version", REQUEST)
attribute_getter("kong.request.get_raw_path", "raw_path", REQUEST)
attribute_getter("kong.request.get_raw_query", "raw_query", REQUEST)


@pdk_method("kong.request.get_path", REQUEST)
def _get_path(ctx: RequestContext, args: list[Any]) -> str:
    from kong_harness.router import normalize_uri

    return normalize_uri(ctx.raw_path, merge_slashes=True)


@pdk_method("kong.request.get_path_with_query", REQUEST)
def _get_path_with_query(ctx: RequestContext, args: list[Any]) -> str:
    return ctx.raw_path + ("?" + ctx.raw_query if ctx.raw_query else "")


def decode_query(
    raw: str, limit: int = MAX_QUERY_ARGS_DEFAULT
) -> dict[str, list[str] | Literal[True]]:
    """ngx.decode_args: ``a=1&a=2&flag`` → ``{a: [1, 2], flag: true}`` (first ``limit``)."""
    out: dict[str, Any] = {}
    for count, part in enumerate(p for p in raw.split("&") if p):
        if count >= limit:
            break
        key, sep, value = part.partition("=")
        key = unquote_plus(key)
        if not key:
            continue
        if not sep:
            out.setdefault(key, True)
            continue
        current = out.get(key)
        value = unquote_plus(value)
        if current is None or current is True:
            out[key] = [value]
        else:
            current.append(value)
    return out


@pdk_method("kong.request.get_query", REQUEST)
def _get_query(ctx: RequestContext, args: list[Any]) -> dict[str, Any]:
    limit = arg_at(args, 0)
    if limit is not None and not isinstance(limit, int | float):
        raise LuaError("max_args must be a number")
    decoded = decode_query(ctx.raw_query, int(limit or MAX_QUERY_ARGS_DEFAULT))
    # mp_rpc.lua fix_mmap: a flag (true) becomes an empty array, a string a 1-item array.
    return {k: ([] if v is True else v) for k, v in decoded.items()}


@pdk_method("kong.request.get_query_arg", REQUEST)
def _get_query_arg(ctx: RequestContext, args: list[Any]) -> Any:
    name = string_arg_at(args, 0, "query argument name must be a string")
    value = decode_query(ctx.raw_query).get(name)
    return value[0] if isinstance(value, list) else value


def lookup_header(headers: Mapping[str, list[str]], name: str) -> list[str] | None:
    """``t[name]`` on a table from ``ngx.req.get_headers()``/``ngx.resp.get_headers()``.

    lua-resty-core (lib/resty/core/request.lua ``req_headers_mt``): the keys are the names
    as sent, lower-cased (``_`` kept); a missing key is retried lower-cased with ``_`` read
    as ``-``. So ``x_foo`` finds a header sent as ``X_Foo`` first, else one sent as ``X-Foo``.
    """
    values = headers.get(name)
    if values is None:
        values = headers.get(name.lower().replace("_", "-"))
    return values


def http_variable(ctx: RequestContext, name: str) -> str | None:
    """nginx's ``$http_<name>`` (ngx_http_variable_unknown_header, nginx 1.25.3 as bundled
    by Kong 3.9.3's OpenResty 1.25.3.2): every header line whose name, lower-cased with
    ``-`` read as ``_``, equals the variable's, values joined with ``", "`` (``"; "`` for
    ``$http_cookie``); ``ngx.var`` lower-cases the variable name itself."""
    wanted = name.lower().replace("-", "_")
    values = [v for k, v in ctx.headers if k.lower().replace("-", "_") == wanted]
    if not values:
        return None
    return ("; " if wanted == "cookie" else ", ").join(values)


def request_header(ctx: RequestContext, name: str) -> str | None:
    """kong/tools/http.lua ``get_header(name)`` (no ctx), as kong.request.get_header uses it.

    ``ngx.var["http_" .. replace_dashes(name)]`` is returned as is unless it contains
    ``", "`` (several header lines, or one value with ``", "`` in it); then the value is
    ``ngx.req.get_headers()[name]`` — the first ``lua_max_req_headers`` (100) lines only —
    and, for a repeated header, its FIRST value. A single ``"a, b"`` therefore stays
    ``"a, b"``; ``X_Foo: 1`` + ``X_Foo: 2`` asked as ``x-foo`` is nil (the table lookup
    reads ``_`` in the *name asked* as ``-``, not in the names sent); a repeated header
    all of whose lines sit past line 100 is nil.
    """
    value = http_variable(ctx, name)
    if value is None or ", " not in value:
        return value
    values = lookup_header(ctx.multimap(ctx.headers, MAX_HEADERS_DEFAULT), name)
    return values[0] if values else None


@pdk_method("kong.request.get_header", REQUEST)
def _get_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = string_arg_at(args, 0, "header name must be a string")
    if ctx.snapshot is not None:
        # plugin.lua exposed_api["kong.request.get_header"]: the saved ngx.req.get_headers()
        # table (metatable lookup), first value of a repeated header.
        values = lookup_header(ctx.snapshot["request_headers"], name)
        return values[0] if values else None
    return request_header(ctx, name)


@pdk_method("kong.request.get_headers", REQUEST)
def _get_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    if ctx.snapshot is not None:
        # plugin.lua exposed_api: ``saved and saved.request_headers or …`` — the saved table,
        # whatever max_headers says (no argument checks in the log phase).
        return ctx.snapshot["request_headers"]
    limit = arg_at(args, 0)
    if limit is not None:
        if not isinstance(limit, int | float):
            raise LuaError("max_headers must be a number")
        if limit < 1:
            raise LuaError("max_headers must be >= 1")
        if limit > 1000:
            raise LuaError("max_headers must be <= 1000")
    return ctx.multimap(ctx.headers, int(limit or MAX_HEADERS_DEFAULT))


@pdk_method("kong.request.get_raw_body", BEFORE_CONTENT)
def _get_raw_body(ctx: RequestContext, args: list[Any]) -> bytes | None:
    # kong/pdk/request.lua get_raw_body: a body over client_body_buffer_size is buffered to
    # a file by nginx; without max_allowed_file_size (kong-pdk sends no argument) that is
    # ``return nil, "request body did not fit into client body buffer, …"``. Only the nil
    # reaches mp_rpc.lua, whose fix_raw then throws (see call()).
    if len(ctx.body) <= ctx.client_body_buffer_size:
        return ctx.body
    limit = arg_at(args, 0)
    if limit is None or limit is False:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise LuaError(f"attempt to compare number with {lua_type(limit)}")
    if limit < 0 or (limit > 0 and len(ctx.body) > limit):
        return None
    return ctx.body


@pdk_method("kong.request.get_start_time", REQUEST)
def _get_start_time(ctx: RequestContext, args: list[Any]) -> float:
    return ctx.start_time * 1000


@pdk_method("kong.request.get_uri_captures", REQUEST)
def _get_uri_captures(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.uri_captures or {"unnamed": [], "named": {}}


def _forwarded(ctx: RequestContext, header: str) -> str | None:
    # kong/pdk/request.lua: is_trusted(get_ip()) then _REQUEST.get_header(header)
    if not ctx.trusted(ctx.peer_ip):
        return None
    return request_header(ctx, header)


@pdk_method("kong.request.get_forwarded_scheme", REQUEST)
def _get_forwarded_scheme(ctx: RequestContext, args: list[Any]) -> str:
    value = _forwarded(ctx, "X-Forwarded-Proto")
    return value.lower() if value else ctx.scheme


@pdk_method("kong.request.get_forwarded_host", REQUEST)
def _get_forwarded_host(ctx: RequestContext, args: list[Any]) -> str:
    value = _forwarded(ctx, "X-Forwarded-Host")
    if not value:
        return ctx.host
    return value.rpartition("@")[2].partition(":")[0].lower()


@pdk_method("kong.request.get_forwarded_port", REQUEST)
def _get_forwarded_port(ctx: RequestContext, args: list[Any]) -> int:
    value = _forwarded(ctx, "X-Forwarded-Port")
    if value and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    return ctx.port
