"""One trace from the client to the database: the gateway span (edge-trace), the backend's
request span and its database spans, collected by one real OTLP/HTTP receiver.

The gateway runs the repository's kong.yml (edge-trace and edge-jwt; the collector comes
from Kong's env vault, EDGE_TRACE_OTLP_ENDPOINT) in front of the real backend (gunicorn)
exporting with the OpenTelemetry SDK to the same receiver. The public edge does not trust
a client's trace context, so the trace starts at the gateway; the backend continues it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.backend import Backend, running_backend
from tests.support.harness import HarnessRunner, shipped_plugins_runner
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.services import closed_port

CLIENT_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SPAN_KIND_SERVER = 2


def gateway(backend: Backend, otlp_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> HarnessRunner:
    from tests.support.backend import repo_kong_yml

    monkeypatch.setenv("EDGE_TRACE_OTLP_ENDPOINT", otlp_endpoint)
    doc = repo_kong_yml(backend, plugins=("edge-trace", "edge-jwt"))
    (trace,) = [p for p in doc["plugins"] if p["name"] == "edge-trace"]
    trace["config"]["otlp_flush_interval_ms"] = 100
    return shipped_plugins_runner(
        yaml.safe_dump(doc, sort_keys=False), ("edge-trace", "edge-jwt")
    ).start()


def tracing_env(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def traced_backend(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[Backend]:
    with running_backend(
        tmp_path_factory.mktemp("traced"), tracing_env(receiver.endpoint)
    ) as server:
        yield server


def trace_id_of(response: httpx.Response) -> tuple[str, str]:
    """(trace id, gateway span id) from the W3C ``traceresponse`` the gateway returns."""
    _, trace_id, span_id, _ = response.headers["traceresponse"].split("-")
    return trace_id, span_id


def test_one_trace_from_gateway_to_database(
    traced_backend: Backend, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = gateway(traced_backend, receiver.endpoint, monkeypatch)
    try:
        with edge.client() as client:
            response = client.post(
                "/api/auth/register",
                headers={"traceparent": CLIENT_TRACEPARENT, "X-Request-ID": "support-e2e-0001"},
                json={"email": "traced@example.com", "password": "correct-horse-battery-9"},
            )
        assert response.status_code == 202, response.text
        trace_id, gateway_span_id = trace_id_of(response)
        assert trace_id != CLIENT_TRACEPARENT.split("-")[1], "untrusted client context ignored"
        assert response.headers["X-Request-ID"] == "support-e2e-0001"

        def complete(spans: list[ReceivedSpan]) -> bool:
            mine = [s for s in spans if s.trace_id == trace_id]
            services = {s.service_name for s in mine}
            return {"kong-edge", "auth-backend"} <= services and any(
                s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in mine
            )

        edge.drain_logs()  # the gateway span is exported from the log phase
        spans = [s for s in receiver.wait_for(complete, timeout=20) if s.trace_id == trace_id]
    finally:
        edge.stop()
    (gateway_span,) = [s for s in spans if s.service_name == "kong-edge"]
    assert gateway_span.span_id == gateway_span_id and gateway_span.kind == SPAN_KIND_SERVER
    assert gateway_span.name == "POST /api/auth/register"
    assert gateway_span.attributes["http.response.status_code"] == 202
    by_id = {s.span_id: s for s in spans}
    (server_span,) = [
        s for s in spans if s.service_name == "auth-backend" and s.kind == SPAN_KIND_SERVER
    ]
    assert server_span.parent_span_id == gateway_span.span_id, "the backend continues it"
    db_spans = [
        s for s in spans if s.attributes.get("db.system") or s.attributes.get("db.system.name")
    ]
    for db_span in db_spans:  # each DB span descends from the backend's request span
        parent = by_id.get(db_span.parent_span_id)
        while parent is not None and parent is not server_span:
            parent = by_id.get(parent.parent_span_id)
        assert parent is server_span, db_span

    # The backend's JSON log line of that request names the same trace and request id.
    records = [
        json.loads(line)
        for line in traced_backend.log.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        r.get("trace_id") == trace_id and r.get("request_id") == "support-e2e-0001" for r in records
    )


def test_collector_down_changes_no_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/v1/traces"
    with running_backend(tmp_path, tracing_env(dead)) as backend:
        edge = gateway(backend, dead, monkeypatch)
        try:
            # That exports never hold a request is asserted without a clock where it can be
            # (kong-plugins/tests/trace/test_export.py, backend/tests/test_tracing.py); here
            # the answers are, and the client's timeout is the hang guard.
            with edge.client() as client:
                answers = [client.get("/api/auth/health/live/") for _ in range(20)]
                profile = client.get("/api/auth/profile")
        finally:
            edge.stop()
    assert [r.status_code for r in answers] == [200] * 20
    assert all(r.json() == {"status": "ok"} for r in answers)
    assert profile.status_code == 401
    assert all("traceresponse" in r.headers and "X-Request-ID" in r.headers for r in answers)
