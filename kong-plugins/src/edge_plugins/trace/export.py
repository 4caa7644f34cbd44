"""The batch span exporter: OTLP/HTTP posts that never block or fail a request.

:meth:`BatchSpanExporter.submit` (called from the log phase) only appends to a bounded
in-memory queue; when the queue is full the span is dropped and counted
(``queue_full``). A background worker — a thread, which is a greenlet in the gevent-mode
plugin server, so its HTTP I/O yields to request handlers — takes up to ``batch_size``
spans whenever that many are queued or ``flush_interval`` has passed, encodes them
(:mod:`.otlp`) and posts them with httpx and a short timeout.

Policy on failure: a batch is posted once. A connection error, a timeout or a non-2xx
answer drops the batch, counted as ``export_failed``; a collector's ``partial_success``
rejections are counted as ``rejected``. No retries, no back-pressure: while the collector
is down the queue fills, drops are counted, and requests are unaffected. Failures are
logged at most once a minute per exporter, so a dead collector does not flood Kong's log.
The worker survives any exception (logged): exporting must not stop because of one bad
batch.

Exporters live in a process-wide registry keyed by their settings (:func:`exporter_for`):
Kong creates a plugin instance per worker and per config change, and all of them with the
same endpoint share one queue, one worker and one HTTP connection pool.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from edge_plugins.trace import metrics
from edge_plugins.trace.config import ExportSettings
from edge_plugins.trace.otlp import CONTENT_TYPE, UnencodableAttribute, encode_spans
from edge_plugins.trace.span import GatewaySpan

log = logging.getLogger(__name__)

FAILURE_LOG_INTERVAL_SECONDS = 60.0

Encoder = Callable[[Sequence[GatewaySpan]], bytes]


class BatchSpanExporter:
    def __init__(
        self,
        endpoint: str,
        encode: Encoder,
        *,
        timeout_seconds: float = 2.0,
        queue_size: int = 2048,
        batch_size: int = 512,
        flush_interval_seconds: float = 1.0,
        client_factory: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._encode = encode
        self._timeout = timeout_seconds
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._interval = flush_interval_seconds
        self._client_factory = client_factory or (
            lambda: httpx.Client(timeout=timeout_seconds, trust_env=False)
        )
        self._queue: collections.deque[GatewaySpan] = collections.deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._flush_requested = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self._last_failure_log = float("-inf")
        self._failures_since_log = 0

    # -- the request side -------------------------------------------------------------
    def submit(self, span: GatewaySpan) -> bool:
        """Queue ``span`` for export; ``False`` (and counted) when it was dropped."""
        start = False
        dropped: str | None = None
        with self._cond:
            if self._closed:
                dropped = "shutdown"
            elif len(self._queue) >= self._queue_size:
                dropped = "queue_full"
            else:
                self._queue.append(span)
                if len(self._queue) >= self._batch_size:
                    self._cond.notify_all()
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._run, daemon=True, name=f"edge-trace-export {self.endpoint}"
                    )
                    start = True
        if dropped is not None:
            metrics.record_dropped(dropped)
            return False
        metrics.add_queued(1)
        if start:
            assert self._worker is not None
            self._worker.start()
        return True

    # -- flushing and shutdown (tests, process exit) ------------------------------------
    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export everything queued now; ``True`` if the queue drained within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._queue or self._in_flight:
                if self._worker is None or not self._worker.is_alive():
                    return not self._queue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._flush_requested = False
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Export what is queued (within ``timeout``), then stop; later spans are dropped."""
        self.force_flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout)

    # -- the worker ---------------------------------------------------------------------
    def _take_batch(self) -> list[GatewaySpan] | None:
        """Wait for a full batch, the interval, a flush or shutdown; ``None`` to stop."""
        with self._cond:
            if (
                len(self._queue) < self._batch_size
                and not self._flush_requested
                and not self._closed
            ):
                self._cond.wait(self._interval)
            if not self._queue:
                self._flush_requested = False
                self._cond.notify_all()
                return None if self._closed else []
            count = min(len(self._queue), self._batch_size)
            batch = [self._queue.popleft() for _ in range(count)]
            self._in_flight = count
        metrics.add_queued(-count)
        return batch

    def _run(self) -> None:
        client = self._client_factory()
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    return
                if not batch:
                    continue
                try:
                    self._export(client, batch)
                except Exception:  # the worker must outlive any bug; the batch is lost
                    log.exception("edge-trace exporter failed on a batch of %d spans", len(batch))
                    metrics.record_dropped("export_failed", len(batch))
                finally:
                    with self._cond:
                        self._in_flight = 0
                        self._cond.notify_all()
        finally:
            client.close()

    def _export(self, client: httpx.Client, batch: list[GatewaySpan]) -> None:
        try:
            body = self._encode(batch)
        except UnencodableAttribute as exc:
            log.error("edge-trace: %d spans not encodable: %s", len(batch), exc)
            metrics.record_dropped("encode_failed", len(batch))
            return
        try:
            response = client.post(
                self.endpoint,
                content=body,
                timeout=self._timeout,
                headers={"Content-Type": CONTENT_TYPE},
            )
        except httpx.HTTPError as exc:
            self._failed(len(batch), f"{type(exc).__name__}: {exc}")
            return
        if not 200 <= response.status_code < 300:
            self._failed(len(batch), f"HTTP {response.status_code}")
            return
        rejected = _rejected_spans(response.content)
        if rejected:
            metrics.record_dropped("rejected", min(rejected, len(batch)))
        metrics.record_exported(max(len(batch) - rejected, 0))

    def _failed(self, count: int, why: str) -> None:
        metrics.record_dropped("export_failed", count)
        self._failures_since_log += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
            log.warning(
                "edge-trace: export to %s failed (%s); %d failed batches since the "
                "last report, spans dropped",
                self.endpoint,
                why,
                self._failures_since_log,
            )
            self._last_failure_log = now
            self._failures_since_log = 0


def _rejected_spans(body: bytes) -> int:
    """``partial_success.rejected_spans`` of an OTLP answer (0 when absent or unparsable)."""
    if not body:
        return 0
    answer = ExportTraceServiceResponse()
    try:
        answer.ParseFromString(body)
    except DecodeError:  # an odd answer body to a 2xx is not an export failure
        return 0
    return int(answer.partial_success.rejected_spans)


# -- the process-wide registry ----------------------------------------------------------
_registry: dict[ExportSettings, BatchSpanExporter] = {}
_registry_lock = threading.Lock()


def exporter_for(settings: ExportSettings, scope_version: str = "") -> BatchSpanExporter:
    """The one exporter of this process for ``settings`` (created on first use)."""
    with _registry_lock:
        exporter = _registry.get(settings)
        if exporter is None:

            def encode(spans: Sequence[GatewaySpan]) -> bytes:
                return encode_spans(spans, settings.service_name, scope_version)

            exporter = BatchSpanExporter(
                settings.endpoint,
                encode,
                timeout_seconds=settings.timeout_seconds,
                queue_size=settings.queue_size,
                batch_size=settings.batch_size,
                flush_interval_seconds=settings.flush_interval_seconds,
            )
            _registry[settings] = exporter
        return exporter
