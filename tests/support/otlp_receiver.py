"""A real OTLP/HTTP trace receiver for tests: ``POST /v1/traces`` with protobuf bodies.

It decodes each ``ExportTraceServiceRequest`` with the official protobuf definitions
(opentelemetry-proto), so exporters under test speak the actual wire protocol to a real
HTTP endpoint; nothing in the exporter is mocked. Spans are flattened into
:class:`ReceivedSpan` records (ids as lower-case hex, attributes as Python values).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    service_name: str
    scope_name: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int
    flags: int
    trace_state: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """Start with :meth:`start`; ``spans`` fills as exporters post to :attr:`endpoint`."""

    status: int = 200
    port_wanted: int = 0
    on_spans: Callable[[list[ReceivedSpan]], None] | None = None
    host: str = "127.0.0.1"
    # False: spans go to on_spans only (a long-running receiver keeps its own bounded store)
    keep_spans: bool = True
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The full traces URL (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` style)."""
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and "protobuf" in (
                    self.headers.get("Content-Type") or ""
                )
                if ok:
                    receiver._record(body)
                status = receiver.status if ok else 415
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port_wanted), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            service_name=str(resource.get("service.name", "")),
                            scope_name=scope_spans.scope.name,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            status_code=span.status.code,
                            flags=span.flags,
                            trace_state=span.trace_state,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests += 1
            if self.keep_spans:
                self.spans.extend(spans)
        if self.on_spans is not None:
            self.on_spans(spans)

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Wait until ``predicate(spans)`` holds; return the spans (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                snapshot = list(self.spans)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"OTLP receiver: condition not met in {timeout}s; "
                    f"got {[(s.service_name, s.name) for s in snapshot]}"
                )
            time.sleep(0.05)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _print_spans(spans: list[ReceivedSpan]) -> None:
    for span in sorted(spans, key=lambda s: s.start_ns):
        duration_ms = (span.end_ns - span.start_ns) / 1e6
        parent = span.parent_span_id or "-" * 16
        print(
            f"{span.trace_id} {span.span_id} <- {parent} {duration_ms:9.2f} ms "
            f"{span.service_name:<13} {span.name}",
            flush=True,
        )


def main() -> None:
    """``python -m tests.support.otlp_receiver [--port 4318]``: print every span received.

    A stand-in for Jaeger where Docker is not available: point EDGE_TRACE_OTLP_ENDPOINT
    and OTEL_EXPORTER_OTLP_ENDPOINT at it and watch one trace cross gateway, backend and
    database (docs/operations.md, "Seeing a trace").
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    receiver = OtlpReceiver(port_wanted=args.port, on_spans=_print_spans).start()
    print(f"OTLP/HTTP receiver on {receiver.endpoint} (Ctrl-C stops)", flush=True)
    print(
        f"{'trace id':<32} {'span id':<16}    {'parent':<16} {'duration':>12} {'service':<13} name",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
