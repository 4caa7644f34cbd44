"""What Kong knows about one request while its plugins run, and how a PDK call ends
abnormally: a Lua error (:class:`LuaError`) or a terminal exit (:class:`Terminated`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_HEADERS_DEFAULT = 100  # lua_max_req_headers / ngx.req.get_headers default
MAX_QUERY_ARGS_DEFAULT = 100
CONTENT_TYPE_JSON = "application/json; charset=utf-8"
# lua-resty-core's error for ngx.var, ngx.req.* and ngx.resp.* outside a request (a timer)
NO_REQUEST = "no request found"


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


def new_request_id() -> str:
    """nginx's $request_id: 16 random bytes as 32 hex characters."""
    import secrets

    return secrets.token_hex(16)
