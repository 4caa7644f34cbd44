"""edge-trace end to end: the harness gateway, the real edge-trace plugin server (gevent
mode), a recording upstream and a real OTLP/HTTP receiver decoding the protobuf.

Routes (each with its own edge-trace config):

* ``/t`` — export to the receiver, trace context on the response;
* ``/deny`` — the same, plus edge-demo (priority 1000) rejecting with 429: an edge
  rejection by a later plugin;
* ``/untrusted`` — ``trust_incoming_context: false`` (a trust boundary);
* ``/b3`` — ``accept_b3: true``;
* ``/down`` — export to a closed port (collector down).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import kong_harness.pdk
from edge_plugins.trace.traceparent import parse_traceparent
from tests.support.harness import HarnessRunner, Upstream, free_port, header
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.services import closed_port

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
CLIENT_TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SPAN = "e457b5a2e4d86bd1"
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def gateway(
    upstream: Upstream, receiver: OtlpReceiver, metrics_port: int
) -> Iterator[HarnessRunner]:
    closed = closed_port()
    exporting = (
        f'otlp_endpoint: "{receiver.endpoint}", otlp_flush_interval_ms: 20, '
        "response_trace_context: true"
    )
    yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: traced, paths: [/t]}}
          - {{name: deny, paths: [/deny]}}
          - {{name: untrusted, paths: [/untrusted]}}
          - {{name: b3, paths: [/b3]}}
          - {{name: down, paths: [/down]}}
    plugins:
      - name: edge-trace
        route: traced
        config: {{{exporting}}}
      - name: edge-trace
        route: deny
        config: {{{exporting}}}
      - name: edge-demo
        route: deny
        config: {{exit_status: 429, greeting: "rate limited"}}
      - name: edge-trace
        route: untrusted
        config: {{trust_incoming_context: false, response_trace_context: true}}
      - name: edge-trace
        route: b3
        config: {{accept_b3: true}}
      - name: edge-trace
        route: down
        config: {{otlp_endpoint: "http://127.0.0.1:{closed}/v1/traces",
                  otlp_flush_interval_ms: 10, otlp_timeout_ms: 200}}
    """
    servers: dict[str, dict[str, str]] = {"edge-trace": {}, "edge-demo": {}}
    commands = {"edge-trace": f"edge-trace --metrics-port {metrics_port} --export-spans"}
    with HarnessRunner(yml, servers=servers, commands=commands) as runner:
        yield runner


def _span_with_id(receiver: OtlpReceiver, span_id: str) -> ReceivedSpan:
    spans = receiver.wait_for(lambda spans: any(s.span_id == span_id for s in spans))
    return next(s for s in spans if s.span_id == span_id)


def _upstream_traceparent(upstream: Upstream) -> Any:
    (value,) = header(upstream.last, "traceparent")
    return parse_traceparent(value)


def test_continued_trace_upstream_response_and_span(
    gateway: HarnessRunner, upstream: Upstream, receiver: OtlpReceiver
) -> None:
    with gateway.client() as client:
        response = client.get(
            "/t/orders?x=1",
            headers={
                "traceparent": CLIENT_TRACEPARENT,
                "tracestate": "rojo=00f067aa0ba902b7 , congo=t61",
                "X-Request-ID": "client-req-0001",
                "User-Agent": "trace-test/1.0",
            },
        )
    assert response.status_code == 200
    sent = _upstream_traceparent(upstream)
    assert sent.trace_id == TRACE_ID
    assert sent.parent_id != CLIENT_SPAN and sent.sampled
    gateway_span = sent.parent_id
    assert header(upstream.last, "tracestate") == ["rojo=00f067aa0ba902b7,congo=t61"]
    assert header(upstream.last, "X-Request-ID") == ["client-req-0001"]
    assert response.headers["x-request-id"] == "client-req-0001"
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{gateway_span}-01"

    span = _span_with_id(receiver, gateway_span)
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, CLIENT_SPAN)
    assert span.name == "GET /t" and span.kind == 2 and span.status_code == 0
    assert span.service_name == "kong-edge"
    assert span.trace_state == "rojo=00f067aa0ba902b7,congo=t61"
    attributes = span.attributes
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.path"] == "/t/orders"
    assert attributes["url.scheme"] == "http"
    assert attributes["http.route"] == "/t"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["user_agent.original"] == "trace-test/1.0"
    assert attributes["kong.route.name"] == "traced"
    assert attributes["kong.service.name"] == "echo"
    assert attributes["kong.request.id"] == response.headers["x-kong-request-id"]
    assert attributes["http.request.header.x-request-id"] == ["client-req-0001"]
    for key in ("kong.latency.kong", "kong.latency.upstream", "kong.latency.request"):
        assert isinstance(attributes[key], int) and attributes[key] >= 0
    assert span.end_ns >= span.start_ns


def test_new_trace_when_no_valid_parent(
    gateway: HarnessRunner, upstream: Upstream, receiver: OtlpReceiver
) -> None:
    with gateway.client() as client:
        response = client.get(
            "/t/x", headers={"tracestate": "congo=t61", "X-Request-ID": "bad id!"}
        )
    sent = _upstream_traceparent(upstream)
    assert sent.trace_id != TRACE_ID and sent.random and sent.sampled  # flags 03
    assert header(upstream.last, "tracestate") == []  # only with a valid traceparent
    (request_id,) = header(upstream.last, "X-Request-ID")
    assert UUID4.fullmatch(request_id) and response.headers["x-request-id"] == request_id
    span = _span_with_id(receiver, sent.parent_id)
    assert span.parent_span_id == "" and span.trace_id == sent.trace_id


def test_duplicate_traceparent_restarts(gateway: HarnessRunner, upstream: Upstream) -> None:
    with gateway.client() as client:
        client.get(
            "/t/x",
            headers=[("traceparent", CLIENT_TRACEPARENT), ("traceparent", CLIENT_TRACEPARENT)],
        )
    assert _upstream_traceparent(upstream).trace_id != TRACE_ID


def test_request_id_echoed_on_an_edge_rejection(
    gateway: HarnessRunner, upstream: Upstream, receiver: OtlpReceiver
) -> None:
    before = len(upstream.requests)
    with gateway.client() as client:
        accepted = client.get(
            "/deny", headers={"X-Request-ID": "client-req-0002", "traceparent": CLIENT_TRACEPARENT}
        )
        generated = client.get("/deny")
    assert len(upstream.requests) == before  # edge-demo stopped both
    assert accepted.status_code == 429 and accepted.json() == {"message": "rate limited"}
    assert accepted.headers["x-request-id"] == "client-req-0002"
    assert generated.status_code == 429 and UUID4.fullmatch(generated.headers["x-request-id"])
    trace_response = parse_traceparent(accepted.headers["traceresponse"])
    span = _span_with_id(receiver, trace_response.parent_id)
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, CLIENT_SPAN)
    assert span.attributes["http.response.status_code"] == 429
    assert span.status_code == 0  # a 4xx is not a server error
    assert "kong.latency.upstream" not in span.attributes  # nothing was proxied


def test_trust_boundary(gateway: HarnessRunner, upstream: Upstream) -> None:
    with gateway.client() as client:
        response = client.get(
            "/untrusted", headers={"traceparent": CLIENT_TRACEPARENT, "tracestate": "rojo=1"}
        )
    sent = _upstream_traceparent(upstream)
    assert sent.trace_id != TRACE_ID and sent.parent_id != CLIENT_SPAN
    assert header(upstream.last, "tracestate") == []
    assert response.headers["traceresponse"].split("-")[1] == sent.trace_id


def test_b3_in_w3c_out(gateway: HarnessRunner, upstream: Upstream) -> None:
    with gateway.client() as client:
        client.get(
            "/b3", headers={"X-B3-TraceId": B3_TRACE, "X-B3-SpanId": B3_SPAN, "X-B3-Sampled": "1"}
        )
    sent = _upstream_traceparent(upstream)
    assert sent.trace_id == B3_TRACE and sent.sampled and sent.parent_id != B3_SPAN
    assert header(upstream.last, "X-B3-TraceId") == []  # consumed: upstreams see one context
    assert header(upstream.last, "X-B3-SpanId") == []


def test_collector_down_changes_no_response(
    gateway: HarnessRunner, upstream: Upstream, metrics_port: int
) -> None:
    # That an export never holds a request is asserted where it can be without a clock (the
    # exporter's queue against a collector that never answers, in
    # kong-plugins/tests/trace/test_export.py); here the client's timeout is the hang guard.
    with gateway.client() as client:
        responses = [
            client.get("/down", headers={"X-Request-ID": f"down-request-{i}"}) for i in range(20)
        ]
    assert [r.status_code for r in responses] == [200] * 20
    assert [r.headers["x-request-id"] for r in responses] == [
        f"down-request-{i}" for i in range(20)
    ]
    gateway.drain_logs()
    deadline = time.monotonic() + 10
    while True:  # the worker reports the failed exports in the plugin server's metrics
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
        match = re.search(r'edge_trace_spans_dropped_total\{reason="export_failed"\} (\S+)', text)
        if match and float(match.group(1)) >= 20:
            break
        assert time.monotonic() < deadline, text[-2000:]
        time.sleep(0.1)
    assert re.search(r'edge_trace_spans_started_total\{sampled="true"\} \d', text)


def test_pdk_round_trips(
    gateway: HarnessRunner, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 PDK calls in access, 1 in log (with export on): counted where the harness answers
    them (kong_harness.pdk.call, which the RPC bridge looks up on every step)."""
    calls: list[tuple[str, str, str]] = []
    real_call = kong_harness.pdk.call

    def counting(ctx: kong_harness.pdk.RequestContext, method: str, args: list[Any]) -> Any:
        calls.append((ctx.plugin_name, ctx.phase, method))
        return real_call(ctx, method, args)

    monkeypatch.setattr(kong_harness.pdk, "call", counting)
    with gateway.client() as client:
        assert (
            client.get("/t/count", headers={"traceparent": CLIENT_TRACEPARENT}).status_code == 200
        )
    gateway.drain_logs()
    mine = [(phase, method) for plugin, phase, method in calls if plugin == "edge-trace"]
    assert mine == [
        ("access", "kong.request.get_headers"),
        ("access", "kong.service.request.set_headers"),
        ("access", "kong.response.set_headers"),
        ("log", "kong.log.serialize"),
    ]


def test_endpoint_from_kongs_env_vault(
    harness_factory: Any,
    upstream: Upstream,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """otlp_endpoint is referenceable: set, the env vault names the collector; unset, the
    reference reads as "" (kong/pdk/vault.lua) and nothing is exported or broken."""
    monkeypatch.setenv("EDGE_TRACE_TEST_OTLP_ENDPOINT", receiver.endpoint)
    yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: vaulted, paths: [/v]}}
          - {{name: unset, paths: [/u]}}
    plugins:
      - name: edge-trace
        route: vaulted
        config:
          otlp_endpoint: "{{vault://env/edge-trace-test-otlp-endpoint}}"
          otlp_flush_interval_ms: 20
      - name: edge-trace
        route: unset
        config:
          otlp_endpoint: "{{vault://env/edge-trace-test-unset-endpoint}}"
    """
    gw = harness_factory(
        yml,
        servers={"edge-trace": {}},
        commands={"edge-trace": "edge-trace --metrics-port 0 --export-spans"},
    )
    with gw.client() as client:
        assert client.get("/u").status_code == 200
        unset_span = _upstream_traceparent(upstream).parent_id
        assert client.get("/v").status_code == 200
        vaulted_span = _upstream_traceparent(upstream).parent_id
    _span_with_id(receiver, vaulted_span)
    assert all(s.span_id != unset_span for s in receiver.spans)
