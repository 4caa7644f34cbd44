"""The batch exporter: bounded, never blocking, failure-proof; real HTTP both ways."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from edge_plugins.trace.config import ExportSettings
from edge_plugins.trace.export import BatchSpanExporter, exporter_for
from edge_plugins.trace.otlp import encode_spans
from edge_plugins.trace.span import GatewaySpan
from tests.support.otlp_receiver import OtlpReceiver


def _span(i: int = 1) -> GatewaySpan:
    return GatewaySpan(
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        parent_span_id=None,
        name="GET /x",
        start_ns=1,
        end_ns=2,
        trace_flags=1,
        attributes={"http.route": "/x"},
    )


def _encode(spans: object) -> bytes:
    return encode_spans(spans, "test-service")  # type: ignore[arg-type]


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _dropped(reason: str) -> float:
    return _counter("edge_trace_spans_dropped_total", reason=reason)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_spans_arrive_in_batches(receiver: OtlpReceiver) -> None:
    exported = _counter("edge_trace_spans_exported_total")
    exporter = BatchSpanExporter(
        receiver.endpoint, _encode, batch_size=4, flush_interval_seconds=0.05
    )
    try:
        for i in range(1, 11):
            assert exporter.submit(_span(i))
        assert exporter.force_flush(5)
        spans = receiver.wait_for(lambda s: len(s) == 10)
    finally:
        exporter.shutdown(1)
    assert sorted(int(s.span_id, 16) for s in spans) == list(range(1, 11))
    assert {s.service_name for s in spans} == {"test-service"}
    assert receiver.requests >= 3  # 10 spans in batches of at most 4
    assert _counter("edge_trace_spans_exported_total") - exported == 10


def test_interval_flushes_a_partial_batch(receiver: OtlpReceiver) -> None:
    exporter = BatchSpanExporter(
        receiver.endpoint, _encode, batch_size=100, flush_interval_seconds=0.05
    )
    try:
        exporter.submit(_span())
        receiver.wait_for(lambda s: len(s) == 1, timeout=5)  # no flush asked for
    finally:
        exporter.shutdown(1)


def test_collector_down_drops_and_counts(closed_port: int) -> None:
    failed = _dropped("export_failed")
    exporter = BatchSpanExporter(
        f"http://127.0.0.1:{closed_port}/v1/traces",
        _encode,
        batch_size=2,
        flush_interval_seconds=0.01,
    )
    try:
        for i in range(1, 6):
            assert exporter.submit(_span(i))  # accepted: the failure is the worker's
        assert exporter.force_flush(5)
    finally:
        exporter.shutdown(1)
    assert _dropped("export_failed") - failed == 5


def test_collector_error_status_drops_and_counts(receiver: OtlpReceiver) -> None:
    receiver.status = 503
    failed = _dropped("export_failed")
    exporter = BatchSpanExporter(receiver.endpoint, _encode, flush_interval_seconds=0.01)
    try:
        exporter.submit(_span())
        assert exporter.force_flush(5)
    finally:
        exporter.shutdown(1)
    assert _dropped("export_failed") - failed == 1


class _HungClient:
    """An httpx.Client stand-in whose post hangs until released: a collector that never
    answers, without a wall clock in the test."""

    def __init__(self) -> None:
        self.posting = threading.Event()
        self.release = threading.Event()
        self.posts = 0

    def post(self, *args: object, **kwargs: object) -> httpx.Response:
        self.posts += 1
        self.posting.set()
        self.release.wait(HANG_GUARD_SECONDS)
        return httpx.Response(200)

    def close(self) -> None:
        pass


# Generous: only a real hang (a submit waiting for the stuck worker) reaches it, however
# loaded the machine is; the assertions are on what happened, not on how long it took.
HANG_GUARD_SECONDS = 30.0


def test_full_queue_drops_and_never_blocks() -> None:
    full = _dropped("queue_full")
    client = _HungClient()
    exporter = BatchSpanExporter(
        "http://collector.invalid/v1/traces",
        _encode,
        queue_size=5,
        batch_size=1,
        flush_interval_seconds=0.01,
        client_factory=lambda: client,  # type: ignore[arg-type,return-value]
    )
    accepted: list[bool] = []
    try:
        assert exporter.submit(_span(1))
        assert client.posting.wait(HANG_GUARD_SECONDS)  # the worker is stuck posting span 1
        submitting = threading.Thread(
            target=lambda: accepted.extend(exporter.submit(_span(i)) for i in range(2, 102))
        )
        submitting.start()
        submitting.join(HANG_GUARD_SECONDS)
        # All 100 submits returned while the post they would wait for was never released.
        assert not submitting.is_alive() and not client.release.is_set()
    finally:
        client.release.set()
        exporter.shutdown(1)
    assert client.posts >= 1
    assert accepted.count(True) == 5 and accepted.count(False) == 95
    assert _dropped("queue_full") - full == 95


def test_after_shutdown_spans_are_dropped(receiver: OtlpReceiver) -> None:
    exporter = BatchSpanExporter(receiver.endpoint, _encode)
    exporter.shutdown(1)
    assert exporter.submit(_span()) is False


def test_registry_shares_one_exporter_per_settings(receiver: OtlpReceiver) -> None:
    settings = ExportSettings(
        endpoint=receiver.endpoint,
        service_name="svc-a",
        timeout_seconds=1.0,
        queue_size=10,
        batch_size=5,
        flush_interval_seconds=0.05,
    )
    first = exporter_for(settings)
    assert exporter_for(_fields(settings)) is first  # equal settings, another object
    other = exporter_for(_fields(settings, service_name="svc-b"))
    assert other is not first
    try:
        first.submit(_span(1))
        other.submit(_span(2))
        spans = receiver.wait_for(lambda s: len(s) == 2)
    finally:
        first.shutdown(1)
        other.shutdown(1)
    assert {(s.service_name, int(s.span_id, 16)) for s in spans} == {("svc-a", 1), ("svc-b", 2)}


def _fields(settings: ExportSettings, **overrides: object) -> ExportSettings:
    values = {name: getattr(settings, name) for name in ExportSettings.__slots__}
    values.update(overrides)
    return ExportSettings(**values)  # type: ignore[arg-type]


def _mock_client(handler: object) -> object:
    import httpx

    return lambda: httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_partial_success_rejections_are_counted() -> None:
    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        answer = ExportTraceServiceResponse()
        answer.partial_success.rejected_spans = 2
        return httpx.Response(200, content=answer.SerializeToString())

    exported, rejected = _counter("edge_trace_spans_exported_total"), _dropped("rejected")
    exporter = BatchSpanExporter(
        "http://collector.invalid/v1/traces",
        _encode,
        batch_size=5,
        flush_interval_seconds=0.01,
        client_factory=_mock_client(handler),
    )  # type: ignore[arg-type]
    try:
        for i in range(1, 6):
            exporter.submit(_span(i))
        assert exporter.force_flush(5)
    finally:
        exporter.shutdown(1)
    assert _counter("edge_trace_spans_exported_total") - exported == 3
    assert _dropped("rejected") - rejected == 2


def test_worker_survives_a_failing_batch(receiver: OtlpReceiver) -> None:
    calls = []

    def flaky_encode(spans: object) -> bytes:
        calls.append(spans)
        if len(calls) == 1:
            raise RuntimeError("a bug in the encoder")
        return _encode(spans)

    failed = _dropped("export_failed")
    exporter = BatchSpanExporter(
        receiver.endpoint, flaky_encode, batch_size=1, flush_interval_seconds=0.01
    )
    try:
        exporter.submit(_span(1))
        assert exporter.force_flush(5)
        exporter.submit(_span(2))
        assert exporter.force_flush(5)
        spans = receiver.wait_for(lambda s: len(s) == 1)
    finally:
        exporter.shutdown(1)
    assert [int(s.span_id, 16) for s in spans] == [2]
    assert _dropped("export_failed") - failed == 1


def test_unencodable_spans_are_dropped_and_counted(receiver: OtlpReceiver) -> None:
    bad = GatewaySpan(
        trace_id="1" * 32,
        span_id="1" * 16,
        parent_span_id=None,
        name="x",
        start_ns=1,
        end_ns=2,
        trace_flags=1,
        attributes={"bad": {"nested": 1}},
    )  # type: ignore[dict-item]
    before = _dropped("encode_failed")
    exporter = BatchSpanExporter(receiver.endpoint, _encode, flush_interval_seconds=0.01)
    try:
        exporter.submit(bad)
        assert exporter.force_flush(5)
    finally:
        exporter.shutdown(1)
    assert _dropped("encode_failed") - before == 1
