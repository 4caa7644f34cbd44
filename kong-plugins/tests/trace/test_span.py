"""The gateway span from kong.log.serialize() (OpenTelemetry HTTP server conventions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_plugins.trace.pending import PendingSpan, PendingSpans
from edge_plugins.trace.span import route_template, span_from_log

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
GATEWAY_SPAN = "b7ad6b7169203331"
CALLER_SPAN = "00f067aa0ba902b7"
STARTED_AT_MS = 1_700_000_000_123


def _serialized(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "request": {
            "id": "kong-request-id-1",
            "uri": "/api/users/42?debug=1",
            "url": "https://api.example.com:8443/api/users/42?debug=1",
            "method": "GET",
            "headers": {
                "traceparent": f"00-{TRACE_ID}-{GATEWAY_SPAN}-01",
                "tracestate": "rojo=1",
                "user-agent": "curl/8.5",
                "x-request-id": "req-12345678",
                "authorization": "REDACTED",
            },
        },
        "response": {"status": 200},
        "latencies": {"kong": 3, "proxy": 12, "request": 17, "receive": 1},
        "route": {"name": "users", "paths": ["/api", "/api/users"]},
        "service": {"name": "user-service"},
        "client_ip": "203.0.113.9",
        "started_at": STARTED_AT_MS,
    }
    entry.update(overrides)
    return entry


def _pending(parent: str | None = CALLER_SPAN, access_ns: int | None = None) -> PendingSpans:
    pending = PendingSpans()
    pending.put(
        GATEWAY_SPAN, PendingSpan(TRACE_ID, parent, access_ns or STARTED_AT_MS * 1_000_000 + 5)
    )
    return pending


def test_span_from_a_proxied_request() -> None:
    pending = _pending()
    span = span_from_log(json.dumps(_serialized()), pending, "X-Request-ID")
    assert span is not None
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        TRACE_ID,
        GATEWAY_SPAN,
        CALLER_SPAN,
    )
    assert span.name == "GET /api/users"
    assert span.trace_flags == 0x01 and span.trace_state == "rojo=1" and not span.error
    assert span.start_ns == STARTED_AT_MS * 1_000_000
    assert span.end_ns == span.start_ns + 17_000_000
    assert span.attributes == {
        "http.request.method": "GET",
        "url.path": "/api/users/42",
        "url.scheme": "https",
        "server.address": "api.example.com",
        "server.port": 8443,
        "http.route": "/api/users",
        "http.response.status_code": 200,
        "client.address": "203.0.113.9",
        "user_agent.original": "curl/8.5",
        "kong.latency.kong": 3,
        "kong.latency.upstream": 12,
        "kong.latency.request": 17,
        "kong.latency.receive": 1,
        "kong.request.id": "kong-request-id-1",
        "kong.route.name": "users",
        "kong.service.name": "user-service",
        "http.request.header.x-request-id": ["req-12345678"],
    }
    assert len(pending) == 0  # the entry is consumed


def test_5xx_is_an_error_4xx_is_not() -> None:
    span = span_from_log(_serialized(response={"status": 503}), _pending(), "X-Request-ID")
    assert span is not None and span.error and span.attributes["error.type"] == "503"
    span = span_from_log(_serialized(response={"status": 429}), _pending(), "X-Request-ID")
    assert span is not None and not span.error and "error.type" not in span.attributes


def test_edge_rejection_has_no_upstream_latency() -> None:
    span = span_from_log(
        _serialized(latencies={"kong": 2, "proxy": -1, "request": 2, "receive": 0}),
        _pending(),
        "X-Request-ID",
    )
    assert span is not None and "kong.latency.upstream" not in span.attributes


def test_root_span_has_no_parent() -> None:
    span = span_from_log(_serialized(), _pending(parent=None), "X-Request-ID")
    assert span is not None and span.parent_span_id is None and not span.remote_parent


def test_unknown_method() -> None:
    data = _serialized()
    data["request"]["method"] = "PURGE"
    span = span_from_log(data, _pending(), "X-Request-ID")
    assert span is not None and span.name == "HTTP /api/users"
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # access did not run (no route matched): no traceparent of ours
        {"traceparent": "garbage"},
        {"traceparent": f"00-{TRACE_ID}-{'1' * 16}-01"},  # not a span we started
        {"traceparent": f"00-{'1' * 32}-{GATEWAY_SPAN}-01"},  # our span id, another trace
    ],
)
def test_no_span_without_a_pending_entry(headers: dict[str, str]) -> None:
    data = _serialized()
    data["request"]["headers"] = headers
    pending = _pending()
    assert span_from_log(data, pending, "X-Request-ID") is None
    assert len(pending) == 1


def test_times_fall_back_to_the_access_timestamp() -> None:
    access_ns = STARTED_AT_MS * 1_000_000 + 40_000_000
    data = _serialized(latencies={"kong": 0, "proxy": -1, "request": 10, "receive": 0})
    del data["started_at"]
    span = span_from_log(data, _pending(access_ns=access_ns), "X-Request-ID")
    assert span is not None
    assert (span.start_ns, span.end_ns) == (access_ns, access_ns + 10_000_000)


@pytest.mark.parametrize(
    ("route", "path", "expected"),
    [
        ({"paths": ["/api"], "name": "r"}, "/api/x", "/api"),
        ({"paths": ["/a", "/b"], "name": "r"}, "/b/c", "/b"),
        ({"paths": [r"~/users/\d+$", "/other"], "name": "r"}, "/users/7", r"~/users/\d+$"),
        ({"paths": ["/a", "/b"], "name": "r"}, "/zzz", "/a"),
        ({"paths": [], "name": "by-host"}, "/x", "by-host"),
        ({"paths": None, "hosts": ["h"]}, "/x", None),
        (None, "/x", None),
    ],
)
def test_route_template(route: Any, path: str, expected: str | None) -> None:
    assert route_template(route, path) == expected


def test_no_route_no_http_route() -> None:
    span = span_from_log(_serialized(route=None), _pending(), "X-Request-ID")
    assert span is not None and span.name == "GET" and "http.route" not in span.attributes


def test_pending_map_is_bounded_and_counts_evictions() -> None:
    from prometheus_client import REGISTRY

    def evicted() -> float:
        return (
            REGISTRY.get_sample_value(
                "edge_trace_spans_dropped_total", {"reason": "pending_overflow"}
            )
            or 0.0
        )

    before = evicted()
    pending = PendingSpans(capacity=3)
    for i in range(5):
        pending.put(f"{i:016x}", PendingSpan(TRACE_ID, None, i))
    assert len(pending) == 3
    assert evicted() - before == 2
    assert pending.pop(f"{0:016x}", TRACE_ID) is None  # the oldest went first
    assert pending.pop(f"{4:016x}", TRACE_ID) == PendingSpan(TRACE_ID, None, 4)
