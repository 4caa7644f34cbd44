"""The Kong entry: which PDK calls a request costs (each one an RPC round trip to Kong)."""

from __future__ import annotations

import json

from edge_plugins import edge_trace
from edge_plugins.trace.traceparent import parse_traceparent
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.recording_kong import RecordingKong

CLIENT_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _request(headers: dict[str, list[str]], client_ip: str = "10.0.0.7") -> RecordingKong:
    return RecordingKong({"kong.request.get_headers": headers, "kong.client.get_ip": client_ip})


def test_access_is_three_round_trips() -> None:
    plugin = edge_trace.Plugin({})
    kong = _request({"traceparent": [CLIENT_TRACEPARENT], "x-request-id": ["client-id-123"]})
    plugin.access(kong)
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.service.request.set_headers",
        "kong.response.set_headers",
    ]
    assert kong.args("kong.request.get_headers") == (edge_trace.MAX_REQUEST_HEADERS,)
    (upstream,) = kong.args("kong.service.request.set_headers")
    sent = parse_traceparent(upstream["traceparent"])
    assert sent.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert sent.parent_id != "b7ad6b7169203331"
    assert upstream["X-Request-ID"] == "client-id-123"
    assert kong.args("kong.response.set_headers") == ({"X-Request-ID": "client-id-123"},)


def test_trusted_ips_cost_one_more_round_trip() -> None:
    plugin = edge_trace.Plugin({"request_id_trusted_ips": ["10.0.0.0/8"]})
    kong = _request({"x-request-id": ["lb-assigned-id-1"]}, client_ip="10.0.0.7")
    plugin.access(kong)
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.client.get_ip",
        "kong.service.request.set_headers",
        "kong.response.set_headers",
    ]
    assert kong.args("kong.response.set_headers")[0]["X-Request-ID"] == "lb-assigned-id-1"
    untrusted = _request({"x-request-id": ["lb-assigned-id-1"]}, client_ip="192.0.2.1")
    plugin.access(untrusted)
    assert untrusted.args("kong.response.set_headers")[0]["X-Request-ID"] != "lb-assigned-id-1"


def test_log_without_export_makes_no_pdk_call() -> None:
    plugin = edge_trace.Plugin({})
    kong = RecordingKong()
    plugin.log(kong)
    assert kong.calls == []


def test_unusable_config_fails_open_after_the_first_call() -> None:
    plugin = edge_trace.Plugin({"request_id_pattern": "(unclosed"})
    assert plugin.config_error is not None
    kong = _request({})
    plugin.access(kong)  # the guard logs and returns: the request goes on untraced
    assert kong.methods == ["kong.request.get_headers"]


def test_log_is_one_round_trip_and_exports_the_span() -> None:
    with OtlpReceiver() as receiver:
        plugin = edge_trace.Plugin(
            {
                "otlp_endpoint": receiver.endpoint,
                "otlp_flush_interval_ms": 20,
                "service_name": "edge-t",
            }
        )
        access = _request({"traceparent": [CLIENT_TRACEPARENT], "user-agent": ["ua/1"]})
        plugin.access(access)
        (upstream,) = access.args("kong.service.request.set_headers")
        serialized = json.dumps(
            {
                "request": {
                    "method": "POST",
                    "uri": "/orders?x=1",
                    "url": "http://gw.local:8000/orders?x=1",
                    "headers": {k.lower(): v for k, v in upstream.items()} | {"user-agent": "ua/1"},
                    "id": "kong-id",
                },
                "response": {"status": 201},
                "client_ip": "198.51.100.4",
                "route": {"name": "orders", "paths": ["/orders"]},
                "service": {"name": "shop"},
                "latencies": {"kong": 1, "proxy": 4, "request": 6, "receive": 0},
                "started_at": 1_700_000_000_000,
            }
        )
        log = RecordingKong({"kong.log.serialize": serialized})
        plugin.log(log)
        assert log.methods == ["kong.log.serialize"]
        (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    gateway_span = parse_traceparent(upstream["traceparent"]).parent_id
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        gateway_span,
        "b7ad6b7169203331",
    )
    assert span.name == "POST /orders" and span.service_name == "edge-t"
    assert span.attributes["http.response.status_code"] == 201
