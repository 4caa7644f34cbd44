"""The gateway's server span, built in the log phase from ``kong.log.serialize()``.

One PDK call gives everything (kong/pdk/log.lua ``serialize``): the request's method, URI,
URL and headers — in Kong the request headers there are the ones plugins set for the
upstream, so the ``traceparent`` we sent, whose parent-id is our span id, can be read back —
plus ``client_ip``, the matched ``route`` and ``service``, the response status,
``latencies`` and ``started_at``. The caller's span id comes from :mod:`.pending`.

Naming and attributes follow OpenTelemetry's stable HTTP server conventions:

* name ``{method} {http.route}`` (``{method}`` alone without a route; ``HTTP`` for methods
  outside the standard set, whose attribute is then ``_OTHER`` plus
  ``http.request.method_original``);
* ``http.route`` is the matched route *template*: the route's path (the longest plain path
  prefixing the request path, else a regex path that matches it, else the first path), or
  the route's name when it has no paths; nothing when no route matched;
* ``url.path``, ``url.scheme``, ``server.address``, ``server.port``, ``client.address``,
  ``user_agent.original``, ``http.response.status_code``; ``error.type`` and status ERROR
  only for 5xx (a 4xx is the client's error, not the server span's);
* Kong's own view: ``kong.latency.kong`` / ``.upstream`` / ``.request`` / ``.receive`` (ms),
  ``kong.request.id``, ``kong.route.name``, ``kong.service.name``, and the request id under
  ``http.request.header.<name>``.

Times: the span starts at Kong's ``started_at`` (the request's arrival, so routing and
earlier phases are inside it) and lasts ``latencies.request``; the access timestamp from
:mod:`.pending` is the fallback start and a lower bound for the end.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from edge_plugins.trace.pending import PendingSpans
from edge_plugins.trace.traceparent import KNOWN_FLAGS, InvalidTraceparent, parse_traceparent

AttributeValue = str | bool | int | float | list[str]

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class GatewaySpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    trace_flags: int
    trace_state: str = ""
    error: bool = False
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    @property
    def remote_parent(self) -> bool:
        """The parent, when there is one, is always the caller's span (remote)."""
        return self.parent_span_id is not None


def _first(value: Any) -> str | None:
    """A header value from serialize: a string, or a list when repeated."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _mapping(value: object) -> Mapping[str, Any]:
    """A table of serialize's output, or an empty one when it is missing or not a table."""
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _millis(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(value)


@functools.lru_cache(maxsize=256)
def _regex(path: str) -> re.Pattern[str] | None:
    try:
        return re.compile(path[1:])
    except re.error:
        return None


def route_template(route: Any, path: str) -> str | None:
    """``http.route`` for a serialized Kong route (see the module docstring)."""
    if not isinstance(route, Mapping):
        return None
    paths = [p for p in route.get("paths") or () if isinstance(p, str) and p]
    if paths:
        plain = [p for p in paths if not p.startswith("~") and path.startswith(p)]
        if plain:
            return max(plain, key=len)
        for candidate in paths:
            if candidate.startswith("~"):
                pattern = _regex(candidate)
                if pattern is not None and pattern.match(path):
                    return candidate
        return paths[0]
    name = route.get("name")
    return name if isinstance(name, str) and name else None


def _name_of(entity: Any) -> str | None:
    if isinstance(entity, Mapping):
        name = entity.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _span_times(data: Mapping[str, Any], access_ns: int) -> tuple[int, int]:
    started_at = _millis(data.get("started_at"))
    latencies = _mapping(data.get("latencies"))
    start_ns = started_at * _MS if started_at is not None else access_ns
    start_ns = min(start_ns, access_ns)
    request_ms = _millis(latencies.get("request"))
    end_ns = start_ns + request_ms * _MS if request_ms is not None else time.time_ns()
    return start_ns, max(end_ns, access_ns)


def _latency_attributes(latencies: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, attribute in (
        ("kong", "kong.latency.kong"),
        ("proxy", "kong.latency.upstream"),
        ("request", "kong.latency.request"),
        ("receive", "kong.latency.receive"),
    ):
        value = _millis(latencies.get(key))
        if value is not None and value >= 0:  # proxy is -1 when nothing was proxied
            out[attribute] = value
    return out


def span_from_log(
    serialized: str | bytes | Mapping[str, Any], pending: PendingSpans, request_id_header: str
) -> GatewaySpan | None:
    """The span to export for this request, or ``None`` when there is none.

    ``None`` when the request carries no ``traceparent`` of ours (the access phase did not
    run: no route matched, or our plugin server failed) or it is not sampled, i.e. when
    :mod:`.pending` has no entry for its span id.
    """
    data: Mapping[str, Any] = (
        json.loads(serialized) if isinstance(serialized, str | bytes) else serialized
    )
    request = _mapping(data.get("request"))
    headers = _mapping(request.get("headers"))
    traceparent = _first(headers.get("traceparent"))
    if traceparent is None:
        return None
    try:
        context = parse_traceparent(traceparent)
    except InvalidTraceparent:
        return None
    entry = pending.pop(context.parent_id, context.trace_id)
    if entry is None or not context.sampled:
        return None

    path = _text(request.get("uri")).split("?", 1)[0] or "/"
    url = urlsplit(_text(request.get("url")))
    raw_method = _text(request.get("method"))
    method = raw_method if raw_method in KNOWN_METHODS else "_OTHER"
    route = route_template(data.get("route"), path)
    raw_status = _mapping(data.get("response")).get("status")
    status = raw_status if isinstance(raw_status, int) else 0
    latencies = _mapping(data.get("latencies"))

    attributes: dict[str, AttributeValue] = {"http.request.method": method, "url.path": path}
    if method == "_OTHER":
        attributes["http.request.method_original"] = raw_method
    if url.scheme:
        attributes["url.scheme"] = url.scheme
    if url.hostname:
        attributes["server.address"] = url.hostname
    try:
        if url.port is not None:
            attributes["server.port"] = url.port
    except ValueError:  # a malformed port in the URL: leave the attribute out
        pass
    if route:
        attributes["http.route"] = route
    if status:
        attributes["http.response.status_code"] = status
    client_ip = data.get("client_ip")
    if isinstance(client_ip, str) and client_ip:
        attributes["client.address"] = client_ip
    user_agent = _first(headers.get("user-agent"))
    if user_agent:
        attributes["user_agent.original"] = user_agent
    attributes.update(_latency_attributes(latencies))
    kong_request_id = request.get("id")
    if isinstance(kong_request_id, str) and kong_request_id:
        attributes["kong.request.id"] = kong_request_id
    for key, entity in (
        ("kong.route.name", data.get("route")),
        ("kong.service.name", data.get("service")),
    ):
        name = _name_of(entity)
        if name:
            attributes[key] = name
    request_id = _first(headers.get(request_id_header.lower()))
    if request_id:
        attributes[f"http.request.header.{request_id_header.lower()}"] = [request_id]
    error = status >= 500
    if error:
        attributes["error.type"] = str(status)

    start_ns, end_ns = _span_times(data, entry.access_ns)
    name = "HTTP" if method == "_OTHER" else method
    return GatewaySpan(
        trace_id=context.trace_id,
        span_id=context.parent_id,
        parent_span_id=entry.parent_span_id,
        name=f"{name} {route}" if route else name,
        start_ns=start_ns,
        end_ns=end_ns,
        trace_flags=context.flags & KNOWN_FLAGS,
        trace_state=_first(headers.get("tracestate")) or "",
        error=error,
        attributes=attributes,
    )
