"""``kong.response``: ``kong/pdk/response.lua``, with Kong's error responses
(``kong/tools/http.lua``)."""

from __future__ import annotations

import json
import logging
from typing import Any

from kong_harness.pdk.context import (
    CONTENT_TYPE_JSON,
    MAX_HEADERS_DEFAULT,
    ExitResponse,
    LuaError,
    RequestContext,
    Terminated,
)
from kong_harness.pdk.private.checks import (
    normalize_header_value,
    validate_header,
    validate_headers,
)
from kong_harness.pdk.private.phases import ALL, HEADER_BODY_LOG, REWRITE_ACCESS_HEADER
from kong_harness.pdk.request import lookup_header
from kong_harness.pdk.table import arg_at, pdk_method, saved_value, string_arg_at

log = logging.getLogger("kong_harness.pdk")


# --- Kong's error responses (kong/pdk/response.lua, kong/tools/http.lua) --------------

HTTP_ERROR_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    407: "Proxy authentication required",
    408: "Request timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length required",
    412: "Precondition failed",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    417: "Expectation failed",
    418: "I'm a teapot",
    421: "Misdirected request",
    422: "Unprocessable entity",
    423: "Locked",
    424: "Failed dependency",
    425: "Too early",
    426: "Upgrade required",
    428: "Precondition required",
    429: "Too many requests",
    431: "Request header fields too large",
    451: "Unavailable for legal reasons",
    494: "Request header or cookie too large",
    500: "An unexpected error occurred",
    501: "Not implemented",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
    505: "HTTP version not supported",
    506: "Variant also negotiates",
    507: "Insufficient storage",
    508: "Loop detected",
    510: "Not extended",
    511: "Network authentication required",
}

_ERROR_TEMPLATES = {
    "application/json; charset=utf-8": '{\n  "message":"%s",\n  "request_id":"%s"\n}',
    "text/plain; charset=utf-8": "%s\nrequest_id: %s\n",
    "text/html; charset=utf-8": (
        '<!doctype html>\n<html>\n  <head>\n    <meta charset="utf-8">\n'
        "    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n"
        "    <p>%s.</p>\n    <p>request_id: %s</p>\n  </body>\n</html>\n"
    ),
    "application/xml; charset=utf-8": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<error>\n  <message>%s</message>\n'
        "  <requestid>%s</requestid>\n</error>\n"
    ),
}
_MIME_TYPES = {
    "application/json": "application/json; charset=utf-8",
    "text/plain": "text/plain; charset=utf-8",
    "text/html": "text/html; charset=utf-8",
    "application/xml": "application/xml; charset=utf-8",
    "text/*": "text/plain; charset=utf-8",
    "application/*": "application/json; charset=utf-8",
}


def error_content_type(accept: str | None) -> str:
    """kong/tools/http.lua ``get_response_type``: highest-q known media type wins."""
    best, best_q = CONTENT_TYPE_JSON, 0.0
    for item in (accept or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for p in params:
            if p.lower().startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if q > best_q:
            best_q = q
            media = media.lower()
            if media == "*/*":
                best = CONTENT_TYPE_JSON
            else:
                best = _MIME_TYPES.get(media, best)
    return best


def error_body(status: int, message: str | None, request_id: str, content_type: str) -> bytes:
    text = (
        message
        if message is not None
        else HTTP_ERROR_MESSAGES.get(status, f"The upstream server responded with {status}")
    )
    template = _ERROR_TEMPLATES.get(content_type, _ERROR_TEMPLATES[CONTENT_TYPE_JSON])
    return (template % (text, request_id)).encode()


def cjson_encode(value: Any) -> bytes:
    """lua-cjson's encoding: compact, and ``/`` escaped as ``\\/``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode()


def build_exit(status: Any, body: Any, headers: Any, min_status: int) -> tuple[int, bytes, list]:
    """Argument checks and body shaping of ``kong.response.exit`` / ``send``."""
    if not isinstance(status, int) or isinstance(status, bool):
        raise LuaError("code must be a number")
    if not min_status <= status <= 599:
        raise LuaError(f"code must be a number between {min_status} and 599")
    if headers is not None:
        validate_headers(headers)
    out: list[tuple[str, str]] = []
    names = set()
    for name, value in sorted((headers or {}).items()):
        if name.lower() in ("transfer-encoding", "transfer_encoding"):
            log.warning("manually setting Transfer-Encoding. Ignored.")
            continue
        names.add(name.lower().replace("_", "-"))
        out.extend((name, v) for v in normalize_header_value(value))
    if isinstance(body, dict | list):
        payload = cjson_encode(body)
        if "content-type" not in names:
            out.append(("Content-Type", CONTENT_TYPE_JSON))
    elif isinstance(body, str):
        payload = body.encode("utf-8", "surrogateescape")
    elif isinstance(body, bytes):
        payload = body
    elif body is None:
        payload = b""
    else:
        raise LuaError("body must be a nil, string or table")
    if "content-length" not in names:
        out.append(("Content-Length", str(len(payload))))
    return status, payload, out


# kong.response.*
@pdk_method("kong.response.get_status", HEADER_BODY_LOG)
def _resp_get_status(ctx: RequestContext, args: list[Any]) -> int | None:
    saved = saved_value(ctx, "response_status")
    return saved if saved is not None else ctx.response_status


def _current_response_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    return [*ctx.upstream_headers, *ctx.response_headers]


@pdk_method("kong.response.get_headers", HEADER_BODY_LOG)
def _resp_get_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    saved = saved_value(ctx, "response_headers")
    if saved is not None:
        return saved
    return ctx.multimap(_current_response_headers(ctx), int(arg_at(args, 0) or MAX_HEADERS_DEFAULT))


@pdk_method("kong.response.get_header", HEADER_BODY_LOG)
def _resp_get_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = string_arg_at(args, 0, "header name must be a string")
    saved = saved_value(ctx, "response_headers")
    if saved is not None:
        # plugin.lua exposed_api: saved ngx.resp.get_headers() table (metatable lookup)
        values = lookup_header(saved, name)
        return values[0] if values else None
    values = [v for k, v in _current_response_headers(ctx) if k.lower() == name.lower()]
    return values[-1] if values else None


@pdk_method("kong.response.get_source", ALL)
def _resp_get_source(ctx: RequestContext, args: list[Any]) -> str:
    return ctx.source


def _set_response_header(ctx: RequestContext, name: str, value: Any, replace: bool) -> None:
    if name.lower() in ("transfer-encoding", "transfer_encoding"):
        log.warning("manually setting Transfer-Encoding. Ignored.")
        return
    if replace:
        lname = name.lower()
        ctx.response_headers = [(k, v) for k, v in ctx.response_headers if k.lower() != lname]
    ctx.response_headers.extend((name, v) for v in normalize_header_value(value))


@pdk_method("kong.response.set_header", REWRITE_ACCESS_HEADER)
def _resp_set_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = arg_at(args, 0), arg_at(args, 1)
    validate_header(name, value)
    _set_response_header(ctx, name, value, replace=True)


@pdk_method("kong.response.add_header", REWRITE_ACCESS_HEADER)
def _resp_add_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = arg_at(args, 0), arg_at(args, 1)
    validate_header(name, value)
    _set_response_header(ctx, name, value, replace=False)


@pdk_method("kong.response.set_headers", REWRITE_ACCESS_HEADER)
def _resp_set_headers(ctx: RequestContext, args: list[Any]) -> None:
    headers = arg_at(args, 0)
    validate_headers(headers)
    for name in sorted(headers):
        _set_response_header(ctx, name, headers[name], replace=True)


@pdk_method("kong.response.clear_header", REWRITE_ACCESS_HEADER)
def _resp_clear_header(ctx: RequestContext, args: list[Any]) -> None:
    name = string_arg_at(args, 0, "header name must be a string")
    lname = name.lower()
    ctx.response_headers = [(k, v) for k, v in ctx.response_headers if k.lower() != lname]
    ctx.upstream_headers = [(k, v) for k, v in ctx.upstream_headers if k.lower() != lname]


@pdk_method("kong.response.set_status", REWRITE_ACCESS_HEADER)
def _resp_set_status(ctx: RequestContext, args: list[Any]) -> None:
    status = arg_at(args, 0)
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise LuaError("code must be a number between 100 and 999")
    ctx.response_status = status


@pdk_method("kong.response.exit", REWRITE_ACCESS_HEADER)
def _resp_exit(ctx: RequestContext, args: list[Any]) -> None:
    status, body, headers = build_exit(arg_at(args, 0), arg_at(args, 1), arg_at(args, 2), 100)
    ctx.exit = ExitResponse(status, body, headers, source="exit")
    raise Terminated


@pdk_method("kong.response.error", REWRITE_ACCESS_HEADER)
def _resp_error(ctx: RequestContext, args: list[Any]) -> None:
    status, message, headers = arg_at(args, 0), arg_at(args, 1), arg_at(args, 2)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise LuaError("code must be a number between 400 and 599")
    if isinstance(message, dict | list):
        message = cjson_encode(message).decode()
    if message is not None and not isinstance(message, str):
        raise LuaError("message must be a nil, a string or a table")
    headers = dict(headers or {})
    validate_headers(headers)
    content_type = headers.get("Content-Type")
    if content_type is None:
        # kong/pdk/response.lua error: ngx.req.get_headers()["Accept"], a repeated header's
        # values joined with "," by kong/tools/http.lua get_response_type.
        accept = lookup_header(ctx.multimap(ctx.headers, MAX_HEADERS_DEFAULT), "Accept")
        content_type = error_content_type(",".join(accept) if accept else None)
        headers["Content-Type"] = content_type
    body = error_body(status, message, ctx.request_id, content_type)
    status, payload, out = build_exit(status, body, headers, 400)
    ctx.exit = ExitResponse(status, payload, out, source="exit")
    raise Terminated
