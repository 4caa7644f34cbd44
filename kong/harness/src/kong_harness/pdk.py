"""The PDK calls a plugin server can make, with Kong's semantics.

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
``ngx.var`` nor ``ngx.req``/``ngx.resp``, work; the others throw (:data:`TIMER_SAFE`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from kong_harness import SERVER_TOKENS

log = logging.getLogger("kong_harness.pdk")

# Phase groups from kong/pdk/private/phases.lua, reduced to the phases external plugins have.
ALL = frozenset({"rewrite", "access", "response", "log"})
REQUEST = ALL
BEFORE_CONTENT = frozenset({"rewrite", "access", "response"})
ACCESS_REWRITE = frozenset({"rewrite", "access"})
REWRITE_ACCESS_HEADER = frozenset({"rewrite", "access", "response"})
HEADER_BODY_LOG = frozenset({"response", "log"})
ROUTER = frozenset({"access", "response", "log"})
LOG_ONLY = frozenset({"log"})
RESPONSE_ONLY = frozenset({"response"})

MAX_HEADERS_DEFAULT = 100  # lua_max_req_headers / ngx.req.get_headers default
MAX_QUERY_ARGS_DEFAULT = 100
CONTENT_TYPE_JSON = "application/json; charset=utf-8"
_PHASE_ORDER = ("rewrite", "access", "response", "log")


class LuaError(Exception):
    """A PDK function threw (``error(...)`` in Lua)."""


class Terminated(Exception):
    """``kong.response.exit``/``error`` ran: the phase ends, no reply goes to the server."""


@dataclass
class ExitResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    source: str  # "exit" (a plugin) or "error" (Kong itself)


@dataclass
class RequestContext:
    """What Kong knows about one request while its plugins run."""

    method: str
    scheme: str
    host: str
    port: int
    raw_path: str
    raw_query: str
    http_version: float
    headers: list[tuple[str, str]]  # in order, original case; edited in place by plugins
    body: bytes
    peer_ip: str
    remote_addr: str  # after the realip module (trusted_ips + real_ip_header)
    request_id: str
    start_time: float  # seconds since epoch
    node_id: str
    trusted: Callable[[str], bool]
    client_body_buffer_size: int = 8192
    route: Mapping[str, Any] | None = None
    service: Mapping[str, Any] | None = None
    uri_captures: Mapping[str, Any] | None = None
    phase: str = "rewrite"
    ctx_shared: dict[str, Any] = field(default_factory=dict)
    ngx_ctx: dict[str, Any] = field(default_factory=dict)
    response_status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)  # set by plugins
    upstream_status: int | None = None
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    upstream_host: str | None = None  # set_header("Host", …)
    upstream_path: str | None = None
    router_upstream_uri: str = ""  # the router's $upstream_uri, already escaped
    exit: ExitResponse | None = None
    source: str = "error"
    snapshot: dict[str, Any] | None = None  # log phase: the data saved for the timer
    log_lines: list[tuple[str, str]] = field(default_factory=list)
    plugin_name: str = ""

    # -- header helpers (ngx.req.* semantics: names compare case-insensitively) --
    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def set_request_header(self, name: str, values: list[str]) -> None:
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]
        self.headers.extend((name, v) for v in values)

    def multimap(self, pairs: Iterable[tuple[str, str]], limit: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for count, (k, v) in enumerate(pairs):
            if count >= limit:
                break  # ngx.req.get_headers(max): the rest is silently truncated
            out.setdefault(k.lower(), []).append(v)
        return out


def check_phase(ctx: RequestContext, allowed: frozenset[str]) -> None:
    """kong/pdk/private/phases.lua ``check_phase``."""
    if ctx.phase not in allowed:
        only = ", ".join(p for p in _PHASE_ORDER if p in allowed)
        raise LuaError(f"function cannot be called in {ctx.phase} phase (only in: {only})")


# --- value checks (kong/pdk/private/checks.lua) ---------------------------------------


def _normalize_header_value(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v if v != "" else " " for v in value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float):
        return [_lua_number(value)]
    return [value if value != "" else " "]


def _lua_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _lua_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    return "table"


def validate_header(name: Any, value: Any) -> None:
    if not isinstance(name, str):
        raise LuaError(f'invalid header name "{name}": got {_lua_type(name)}, expected string')
    if isinstance(value, list):
        for v in value:
            if not isinstance(v, str):
                raise LuaError(
                    f'invalid header value in array "{name}": got {_lua_type(v)}, expected string'
                )
    elif not isinstance(value, str | int | float | bool):
        raise LuaError(
            f'invalid header value for "{name}": got {_lua_type(value)}, expected array of '
            "string, string, number or boolean"
        )


def validate_headers(headers: Any) -> None:
    if not isinstance(headers, dict):
        raise LuaError("headers must be a table")
    for k, v in headers.items():
        validate_header(k, v)


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
        out.extend((name, v) for v in _normalize_header_value(value))
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


# --- the PDK table ---------------------------------------------------------------------

PdkFunction = Callable[[RequestContext, list[Any]], Any]
PDK: dict[str, PdkFunction] = {}
PHASES_OF: dict[str, frozenset[str]] = {}  # the phases each PDK function's check_phase allows
STEP_METHODS = {  # mp_rpc.lua get_step_method
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
    "kong.router.get_route": "plugin.StepRoute",
    "kong.router.get_service": "plugin.StepService",
}


def pdk(name: str, phases: frozenset[str] = ALL) -> Callable[[PdkFunction], PdkFunction]:
    def register(fn: PdkFunction) -> PdkFunction:
        def checked(ctx: RequestContext, args: list[Any]) -> Any:
            check_phase(ctx, phases)
            return fn(ctx, args)

        PDK[name] = checked
        PHASES_OF[name] = phases
        return fn

    return register


def _arg(args: list[Any], i: int) -> Any:
    return args[i] if len(args) > i else None


def _str_arg(args: list[Any], i: int, error: str) -> str:
    """Argument ``i``, which Kong's PDK requires to be a string (else it throws ``error``)."""
    value = _arg(args, i)
    if not isinstance(value, str):
        raise LuaError(error)
    return value


def _saved(ctx: RequestContext, key: str) -> Any:
    return ctx.snapshot[key] if ctx.snapshot is not None else None


def _attribute(name: str, attribute: str, phases: frozenset[str] = ALL) -> None:
    """A PDK getter that answers one field of the request context."""

    def get(ctx: RequestContext, args: list[Any]) -> Any:
        check_phase(ctx, phases)
        return getattr(ctx, attribute)

    PDK[name] = get
    PHASES_OF[name] = phases


# kong.request.*
_attribute("kong.request.get_method", "method", REQUEST)
_attribute("kong.request.get_scheme", "scheme", REQUEST)
_attribute("kong.request.get_host", "host", REQUEST)
_attribute("kong.request.get_port", "port")
_attribute("kong.request.get_http_version", "http_version", REQUEST)
_attribute("kong.request.get_raw_path", "raw_path", REQUEST)
_attribute("kong.request.get_raw_query", "raw_query", REQUEST)
# kong/pdk/client.lua: get_ip is always the directly connected peer (realip_remote_addr);
# get_forwarded_ip is $remote_addr after the realip module (trusted_ips + real_ip_header).
_attribute("kong.client.get_ip", "peer_ip")
_attribute("kong.client.get_forwarded_ip", "remote_addr")
_attribute("kong.node.get_id", "node_id")
_attribute("kong.nginx.req_start_time", "start_time")


@pdk("kong.request.get_path", REQUEST)
def _get_path(ctx: RequestContext, args: list[Any]) -> str:
    from kong_harness.router import normalize_uri

    return normalize_uri(ctx.raw_path, merge_slashes=True)


@pdk("kong.request.get_path_with_query", REQUEST)
def _get_path_with_query(ctx: RequestContext, args: list[Any]) -> str:
    return ctx.raw_path + ("?" + ctx.raw_query if ctx.raw_query else "")


def decode_query(raw: str, limit: int = MAX_QUERY_ARGS_DEFAULT) -> dict[str, list[str] | bool]:
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


@pdk("kong.request.get_query", REQUEST)
def _get_query(ctx: RequestContext, args: list[Any]) -> dict[str, Any]:
    limit = _arg(args, 0)
    if limit is not None and not isinstance(limit, int | float):
        raise LuaError("max_args must be a number")
    decoded = decode_query(ctx.raw_query, int(limit or MAX_QUERY_ARGS_DEFAULT))
    # mp_rpc.lua fix_mmap: a flag (true) becomes an empty array, a string a 1-item array.
    return {k: ([] if v is True else v) for k, v in decoded.items()}


@pdk("kong.request.get_query_arg", REQUEST)
def _get_query_arg(ctx: RequestContext, args: list[Any]) -> Any:
    name = _str_arg(args, 0, "query argument name must be a string")
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


@pdk("kong.request.get_header", REQUEST)
def _get_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = _str_arg(args, 0, "header name must be a string")
    if ctx.snapshot is not None:
        # plugin.lua exposed_api["kong.request.get_header"]: the saved ngx.req.get_headers()
        # table (metatable lookup), first value of a repeated header.
        values = lookup_header(ctx.snapshot["request_headers"], name)
        return values[0] if values else None
    return request_header(ctx, name)


@pdk("kong.request.get_headers", REQUEST)
def _get_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    if ctx.snapshot is not None:
        # plugin.lua exposed_api: ``saved and saved.request_headers or …`` — the saved table,
        # whatever max_headers says (no argument checks in the log phase).
        return ctx.snapshot["request_headers"]
    limit = _arg(args, 0)
    if limit is not None:
        if not isinstance(limit, int | float):
            raise LuaError("max_headers must be a number")
        if limit < 1:
            raise LuaError("max_headers must be >= 1")
        if limit > 1000:
            raise LuaError("max_headers must be <= 1000")
    return ctx.multimap(ctx.headers, int(limit or MAX_HEADERS_DEFAULT))


@pdk("kong.request.get_raw_body", BEFORE_CONTENT)
def _get_raw_body(ctx: RequestContext, args: list[Any]) -> bytes | None:
    # kong/pdk/request.lua get_raw_body: a body over client_body_buffer_size is buffered to
    # a file by nginx; without max_allowed_file_size (kong-pdk sends no argument) that is
    # ``return nil, "request body did not fit into client body buffer, …"``. Only the nil
    # reaches mp_rpc.lua, whose fix_raw then throws (see call()).
    if len(ctx.body) <= ctx.client_body_buffer_size:
        return ctx.body
    limit = _arg(args, 0)
    if limit is None or limit is False:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise LuaError(f"attempt to compare number with {_lua_type(limit)}")
    if limit < 0 or (limit > 0 and len(ctx.body) > limit):
        return None
    return ctx.body


@pdk("kong.request.get_start_time", REQUEST)
def _get_start_time(ctx: RequestContext, args: list[Any]) -> float:
    return ctx.start_time * 1000


@pdk("kong.request.get_uri_captures", REQUEST)
def _get_uri_captures(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.uri_captures or {"unnamed": [], "named": {}}


def _forwarded(ctx: RequestContext, header: str) -> str | None:
    # kong/pdk/request.lua: is_trusted(get_ip()) then _REQUEST.get_header(header)
    if not ctx.trusted(ctx.peer_ip):
        return None
    return request_header(ctx, header)


@pdk("kong.request.get_forwarded_scheme", REQUEST)
def _get_forwarded_scheme(ctx: RequestContext, args: list[Any]) -> str:
    value = _forwarded(ctx, "X-Forwarded-Proto")
    return value.lower() if value else ctx.scheme


@pdk("kong.request.get_forwarded_host", REQUEST)
def _get_forwarded_host(ctx: RequestContext, args: list[Any]) -> str:
    value = _forwarded(ctx, "X-Forwarded-Host")
    if not value:
        return ctx.host
    return value.rpartition("@")[2].partition(":")[0].lower()


@pdk("kong.request.get_forwarded_port", REQUEST)
def _get_forwarded_port(ctx: RequestContext, args: list[Any]) -> int:
    value = _forwarded(ctx, "X-Forwarded-Port")
    if value and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    return ctx.port


# kong.client.*
@pdk("kong.client.get_protocol", ROUTER)
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
    if not _arg(args, 0) or not ctx.trusted(ctx.peer_ip):
        return "http"
    proto = http_variable(ctx, "X-Forwarded-Proto")  # ngx.var.http_x_forwarded_proto
    if proto is None:
        return "http"
    if "," in proto:
        return None  # nil, "Only one X-Forwarded-Proto header allowed"
    return "https" if proto.lower() == "https" else "http"


@pdk("kong.ip.is_trusted")
def _ip_is_trusted(ctx: RequestContext, args: list[Any]) -> bool:
    address = _str_arg(args, 0, "address must be a string")
    return ctx.trusted(address)


@pdk("kong.nginx.get_ctx")
def _nginx_get_ctx(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.ngx_ctx.get(_arg(args, 0))


@pdk("kong.nginx.set_ctx")
def _nginx_set_ctx(ctx: RequestContext, args: list[Any]) -> None:
    ctx.ngx_ctx[_arg(args, 0)] = _arg(args, 1)


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


@pdk("kong.nginx.get_var")
def _nginx_get_var(ctx: RequestContext, args: list[Any]) -> str | None:
    """plugin.lua exposed_api ``kong.nginx.get_var``: ``ngx.var[name]``, no phase check."""
    name = _arg(args, 0)
    variable = NGINX_VARIABLES.get(name) if isinstance(name, str) else None
    if variable is None:
        # An unknown nginx variable is nil in Kong too; one Kong has but the harness does
        # not model must not pass for it silently.
        log.error("harness does not model nginx variable $%s: answering nil", name)
        return None
    return variable(ctx)


# kong.ctx.shared: plugin.lua exposes get/set, keyed by any value, shared by all plugins
@pdk("kong.ctx.shared.get")
def _shared_get(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.ctx_shared.get(_arg(args, 0))


@pdk("kong.ctx.shared.set")
def _shared_set(ctx: RequestContext, args: list[Any]) -> None:
    ctx.ctx_shared[_arg(args, 0)] = _arg(args, 1)


# kong.router.*
@pdk("kong.router.get_route", ROUTER)
def _get_route(ctx: RequestContext, args: list[Any]) -> Any:
    return dict(ctx.route) if ctx.route else None


@pdk("kong.router.get_service", ROUTER)
def _get_service(ctx: RequestContext, args: list[Any]) -> Any:
    return dict(ctx.service) if ctx.service else None


# kong.service.request.*
@pdk("kong.service.request.set_header", ACCESS_REWRITE)
def _svc_set_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = _arg(args, 0), _arg(args, 1)
    validate_header(name, value)
    values = _normalize_header_value(value)
    if name.lower() == "host":
        ctx.upstream_host = values[0]
    ctx.set_request_header(name, values)


@pdk("kong.service.request.add_header", ACCESS_REWRITE)
def _svc_add_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = _arg(args, 0), _arg(args, 1)
    validate_header(name, value)
    values = _normalize_header_value(value)
    if name.lower() == "host":
        ctx.upstream_host = values[0]
    ctx.headers.extend((name, v) for v in values)


@pdk("kong.service.request.clear_header", ACCESS_REWRITE)
def _svc_clear_header(ctx: RequestContext, args: list[Any]) -> None:
    name = _str_arg(args, 0, "header must be a string")
    ctx.set_request_header(name, [])


@pdk("kong.service.request.set_headers", ACCESS_REWRITE)
def _svc_set_headers(ctx: RequestContext, args: list[Any]) -> None:
    headers = _arg(args, 0)
    if not isinstance(headers, dict):
        raise LuaError("headers must be a table")
    validate_headers(headers)
    for name, value in headers.items():
        values = _normalize_header_value(value)
        if name.lower() == "host":
            ctx.upstream_host = values[0]
        ctx.set_request_header(name, values)


@pdk("kong.service.request.set_path", ACCESS_REWRITE)
def _svc_set_path(ctx: RequestContext, args: list[Any]) -> None:
    path = _str_arg(args, 0, "path must be a string")
    if not path.startswith("/"):
        raise LuaError("path must start with /")
    ctx.upstream_path = path


@pdk("kong.service.request.set_raw_query", ACCESS_REWRITE)
def _svc_set_raw_query(ctx: RequestContext, args: list[Any]) -> None:
    query = _str_arg(args, 0, "query must be a string")
    ctx.raw_query = query


@pdk("kong.service.request.set_method", ACCESS_REWRITE)
def _svc_set_method(ctx: RequestContext, args: list[Any]) -> None:
    method = _str_arg(args, 0, "method must be a string")
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


# kong.service.response.* (response phase: the upstream's answer)
@pdk("kong.service.response.get_status", HEADER_BODY_LOG)
def _svc_resp_status(ctx: RequestContext, args: list[Any]) -> int | None:
    return ctx.upstream_status


@pdk("kong.service.response.get_headers", HEADER_BODY_LOG)
def _svc_resp_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    return ctx.multimap(ctx.upstream_headers, int(_arg(args, 0) or MAX_HEADERS_DEFAULT))


@pdk("kong.service.response.get_header", HEADER_BODY_LOG)
def _svc_resp_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = str(_arg(args, 0)).lower()
    values = [v for k, v in ctx.upstream_headers if k.lower() == name]
    return values[0] if values else None


# kong.response.*
@pdk("kong.response.get_status", HEADER_BODY_LOG)
def _resp_get_status(ctx: RequestContext, args: list[Any]) -> int | None:
    saved = _saved(ctx, "response_status")
    return saved if saved is not None else ctx.response_status


def _current_response_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    return [*ctx.upstream_headers, *ctx.response_headers]


@pdk("kong.response.get_headers", HEADER_BODY_LOG)
def _resp_get_headers(ctx: RequestContext, args: list[Any]) -> dict[str, list[str]]:
    saved = _saved(ctx, "response_headers")
    if saved is not None:
        return saved
    return ctx.multimap(_current_response_headers(ctx), int(_arg(args, 0) or MAX_HEADERS_DEFAULT))


@pdk("kong.response.get_header", HEADER_BODY_LOG)
def _resp_get_header(ctx: RequestContext, args: list[Any]) -> str | None:
    name = _str_arg(args, 0, "header name must be a string")
    saved = _saved(ctx, "response_headers")
    if saved is not None:
        # plugin.lua exposed_api: saved ngx.resp.get_headers() table (metatable lookup)
        values = lookup_header(saved, name)
        return values[0] if values else None
    values = [v for k, v in _current_response_headers(ctx) if k.lower() == name.lower()]
    return values[-1] if values else None


@pdk("kong.response.get_source", ALL)
def _resp_get_source(ctx: RequestContext, args: list[Any]) -> str:
    return ctx.source


def _set_response_header(ctx: RequestContext, name: str, value: Any, replace: bool) -> None:
    if name.lower() in ("transfer-encoding", "transfer_encoding"):
        log.warning("manually setting Transfer-Encoding. Ignored.")
        return
    if replace:
        lname = name.lower()
        ctx.response_headers = [(k, v) for k, v in ctx.response_headers if k.lower() != lname]
    ctx.response_headers.extend((name, v) for v in _normalize_header_value(value))


@pdk("kong.response.set_header", REWRITE_ACCESS_HEADER)
def _resp_set_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = _arg(args, 0), _arg(args, 1)
    validate_header(name, value)
    _set_response_header(ctx, name, value, replace=True)


@pdk("kong.response.add_header", REWRITE_ACCESS_HEADER)
def _resp_add_header(ctx: RequestContext, args: list[Any]) -> None:
    name, value = _arg(args, 0), _arg(args, 1)
    validate_header(name, value)
    _set_response_header(ctx, name, value, replace=False)


@pdk("kong.response.set_headers", REWRITE_ACCESS_HEADER)
def _resp_set_headers(ctx: RequestContext, args: list[Any]) -> None:
    headers = _arg(args, 0)
    validate_headers(headers)
    for name in sorted(headers):
        _set_response_header(ctx, name, headers[name], replace=True)


@pdk("kong.response.clear_header", REWRITE_ACCESS_HEADER)
def _resp_clear_header(ctx: RequestContext, args: list[Any]) -> None:
    name = _str_arg(args, 0, "header name must be a string")
    lname = name.lower()
    ctx.response_headers = [(k, v) for k, v in ctx.response_headers if k.lower() != lname]
    ctx.upstream_headers = [(k, v) for k, v in ctx.upstream_headers if k.lower() != lname]


@pdk("kong.response.set_status", REWRITE_ACCESS_HEADER)
def _resp_set_status(ctx: RequestContext, args: list[Any]) -> None:
    status = _arg(args, 0)
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise LuaError("code must be a number between 100 and 999")
    ctx.response_status = status


@pdk("kong.response.exit", REWRITE_ACCESS_HEADER)
def _resp_exit(ctx: RequestContext, args: list[Any]) -> None:
    status, body, headers = build_exit(_arg(args, 0), _arg(args, 1), _arg(args, 2), 100)
    ctx.exit = ExitResponse(status, body, headers, source="exit")
    raise Terminated


@pdk("kong.response.error", REWRITE_ACCESS_HEADER)
def _resp_error(ctx: RequestContext, args: list[Any]) -> None:
    status, message, headers = _arg(args, 0), _arg(args, 1), _arg(args, 2)
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


# kong.log.*: namespaced by plugin (kong_global.set_namespaced_log), into our logging
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "err": logging.ERROR,
    "crit": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emerg": logging.CRITICAL,
}


def _make_log(level_name: str) -> PdkFunction:
    def write(ctx: RequestContext, args: list[Any]) -> None:
        message = "".join(_lua_tostring(a) for a in args)
        ctx.log_lines.append((level_name, message))
        logging.getLogger(f"kong_harness.plugin.{ctx.plugin_name}").log(
            _LOG_LEVELS[level_name], "[%s] %s", ctx.plugin_name, message
        )

    return write


def _lua_tostring(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _lua_number(value)
    return str(value)


for _level in _LOG_LEVELS:
    PDK[f"kong.log.{_level}"] = _make_log(_level)
PDK["kong.log"] = _make_log("notice")


@pdk("kong.log.serialize", LOG_ONLY)
def _log_serialize(ctx: RequestContext, args: list[Any]) -> str:
    # plugin.lua: the JSON of what kong.log.serialize() returned when the log timer was set
    assert ctx.snapshot is not None
    return json.dumps(ctx.snapshot["serialize_data"])


def serialize(
    ctx: RequestContext,
    status: int,
    response_headers: list[tuple[str, str]],
    bytes_sent: int,
    latencies: Mapping[str, float],
    upstream_uri: str,
    upstream_status: int | None,
) -> dict[str, Any]:
    """kong/pdk/log.lua ``serialize`` for the http subsystem."""
    request_headers = ctx.multimap(ctx.headers, MAX_HEADERS_DEFAULT)
    for secret in ("authorization", "proxy-authorization"):
        if secret in request_headers:
            request_headers[secret] = "REDACTED"  # type: ignore[assignment]
    request_uri = ctx.raw_path + ("?" + ctx.raw_query if ctx.raw_query else "")
    return {
        "request": {
            "id": ctx.request_id,
            "uri": request_uri,
            "url": f"{ctx.scheme}://{ctx.host}:{ctx.port}{request_uri}",
            "querystring": {
                k: (v if v is True else (v[0] if len(v) == 1 else v))
                for k, v in decode_query(ctx.raw_query).items()
            },
            "method": ctx.method,
            "headers": {
                k: (v[0] if isinstance(v, list) and len(v) == 1 else v)
                for k, v in request_headers.items()
            },
            "size": len(ctx.body),
        },
        "upstream_uri": upstream_uri,
        "upstream_status": str(upstream_status) if upstream_status else "",
        "response": {
            "status": status,
            "headers": {
                k: (v[0] if len(v) == 1 else v)
                for k, v in ctx.multimap(response_headers, MAX_HEADERS_DEFAULT).items()
            },
            "size": bytes_sent,
        },
        "latencies": dict(latencies),
        "tries": [],
        "route": dict(ctx.route) if ctx.route else None,
        "service": dict(ctx.service) if ctx.service else None,
        "client_ip": ctx.remote_addr,
        "started_at": int(ctx.start_time * 1000),
        "source": ctx.source,
        "workspace": "00000000-0000-0000-0000-000000000000",
        "workspace_name": "default",
    }


# The log phase of an external plugin runs in ``ngx.timer.at`` (kong/runloop/plugin_servers/
# plugin.lua build_phases), where no request exists: lua-resty-core's ngx.var, ngx.req.* and
# ngx.resp.get_headers throw "no request found". What still works there: exposed_api's
# overrides that read the saved data (kong.log.serialize, kong.nginx.get_ctx/set_ctx,
# kong.ctx.shared.get/set, kong.request.get_headers/get_header/get_uri_captures,
# kong.response.get_status/get_headers/get_header/get_source, kong.nginx.req_start_time)
# and PDK functions that read only ngx.ctx (get_ctx_table(saved.ngx_ctx) installs the saved
# clone, so phase checks see "log"), kong.configuration or the node.
NO_REQUEST = "no request found"
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
        *(f"kong.log.{level}" for level in _LOG_LEVELS),
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


def trusted_ips_checker(cidrs: Iterable[str]) -> Callable[[str], bool]:
    """``trusted_ips`` from kong.conf (``0.0.0.0/0,::/0`` trusts all, empty trusts none)."""
    networks = [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in networks if n.version == ip.version)

    return trusted


def new_request_id() -> str:
    """nginx's $request_id: 16 random bytes as 32 hex characters."""
    import secrets

    return secrets.token_hex(16)


def now() -> float:
    return time.time()


KONG_SERVER_HEADER = SERVER_TOKENS
