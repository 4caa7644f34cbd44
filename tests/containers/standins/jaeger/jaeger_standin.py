"""Jaeger stand-in: OTLP/HTTP in (4318), a bounded in-memory store, Jaeger's query API out.

Spans are decoded by the repository's tests/support/otlp_receiver.py (the official OTLP protobuf
definitions). The query API answers in the JSON shape of Jaeger's own HTTP API
(cmd/query/app/http_handler.go, model/json), so a test that fetches a trace here fetches
it from real Jaeger the same way:

    GET :16686/api/services              {"data": [service, ...]}
    GET :16686/api/traces/<trace id>     {"data": [{"traceID", "spans", "processes"}]}
    GET :16686/api/traces?service=S&limit=N
    GET :14269/                          v1 admin health   GET :13133/status  v2 health
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from otlp_receiver import OtlpReceiver, ReceivedSpan

# Jaeger v1's MEMORY_MAX_TRACES; v2's max_traces in its --config file wins (max_traces()).
DEFAULT_MAX_TRACES = int(os.environ.get("MEMORY_MAX_TRACES") or 100_000)
STARTED = datetime.datetime.now(datetime.UTC).isoformat()
SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class TraceStore:
    def __init__(self, max_traces: int) -> None:
        self.max_traces = max_traces
        self.traces: OrderedDict[str, list[ReceivedSpan]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self.lock:
            for span in spans:
                self.traces.setdefault(span.trace_id, []).append(span)
                self.traces.move_to_end(span.trace_id)
            while len(self.traces) > self.max_traces:
                self.traces.popitem(last=False)  # the oldest trace goes, as Jaeger's memory store

    def get(self, trace_id: str) -> list[ReceivedSpan] | None:
        with self.lock:
            spans = self.traces.get(trace_id.lower().rjust(32, "0"))
            return list(spans) if spans is not None else None

    def services(self) -> list[str]:
        with self.lock:
            return sorted({s.service_name for spans in self.traces.values() for s in spans})

    def find(self, service: str, limit: int) -> list[list[ReceivedSpan]]:
        with self.lock:
            found = [
                list(spans)
                for spans in reversed(self.traces.values())
                if any(s.service_name == service for s in spans)
            ]
        return found[:limit]


def config_path(argv: list[str]) -> str | None:
    """v2's `--config <file>` / `--config=<file>` (a `file:` prefix allowed)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1].removeprefix("file:")
        if arg.startswith("--config="):
            return arg.split("=", 1)[1].removeprefix("file:")
    return None


def max_traces(config: Any) -> int | None:
    """The first `memory: {max_traces: N}` anywhere in v2's config (a jaeger_storage
    backend); None when there is none."""
    if isinstance(config, dict):
        memory = config.get("memory")
        if isinstance(memory, dict) and "max_traces" in memory:
            return int(memory["max_traces"])
        values = list(config.values())
    elif isinstance(config, list):
        values = config
    else:
        return None
    for value in values:
        found = max_traces(value)
        if found is not None:
            return found
    return None


def tag(key: str, value: Any) -> dict[str, Any]:
    kinds = {bool: "bool", int: "int64", float: "float64"}
    kind = kinds.get(type(value), "string")
    return {"key": key, "type": kind, "value": value if kind != "string" else str(value)}


def trace_json(spans: list[ReceivedSpan]) -> dict[str, Any]:
    """One trace in Jaeger's JSON model (model/json/model.go)."""
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[str, str] = {}
    out = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        key = json.dumps(span.resource, sort_keys=True, default=str)
        if key not in process_ids:
            process_ids[key] = f"p{len(process_ids) + 1}"
            processes[process_ids[key]] = {
                "serviceName": span.service_name,
                "tags": [tag(k, v) for k, v in span.resource.items() if k != "service.name"],
            }
        tags = [tag(k, v) for k, v in span.attributes.items()]
        if span.kind in SPAN_KINDS:
            tags.append(tag("span.kind", SPAN_KINDS[span.kind]))
        if span.status_code == 2:
            tags.append(tag("error", True))
        references = []
        if span.parent_span_id:
            references.append(
                {"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id}
            )
        out.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "operationName": span.name,
                "references": references,
                "flags": span.flags,
                "startTime": span.start_ns // 1000,
                "duration": (span.end_ns - span.start_ns) // 1000,
                "tags": tags,
                "logs": [],
                "processID": process_ids[key],
                "warnings": None,
            }
        )
    return {"traceID": spans[0].trace_id, "spans": out, "processes": processes, "warnings": None}


def serve(port: int, routes: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = routes(urlsplit(self.path))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> int:
    limit = DEFAULT_MAX_TRACES
    path = config_path(sys.argv[1:])
    if path is not None:
        try:  # unreadable or not YAML: exit, as Jaeger would
            with open(path) as config_file:
                limit = max_traces(yaml.safe_load(config_file)) or limit
        except (OSError, yaml.YAMLError, ValueError) as exc:
            print(f"jaeger stand-in: cannot load {path}: {exc}", file=sys.stderr, flush=True)
            return 1
    store = TraceStore(limit)

    def query(url: Any) -> tuple[int, Any]:
        page = {"total": 0, "limit": 0, "offset": 0, "errors": None}
        if url.path == "/api/services":
            services = store.services()
            return 200, {**page, "data": services, "total": len(services)}
        if url.path.startswith("/api/traces/"):
            spans = store.get(url.path.rsplit("/", 1)[-1])
            if spans is None:
                missing = [{"code": 404, "msg": "trace not found"}]
                return 404, {**page, "data": None, "errors": missing}
            return 200, {**page, "data": [trace_json(spans)]}
        if url.path == "/api/traces":
            params = parse_qs(url.query)
            service = params.get("service", [""])[0]
            limit = int(params.get("limit", ["20"])[0])
            return 200, {**page, "data": [trace_json(t) for t in store.find(service, limit)]}
        return 404, {**page, "data": None, "errors": [{"code": 404, "msg": "not found"}]}

    def health(url: Any) -> tuple[int, Any]:
        return 200, {"status": "Server available", "upSince": STARTED}

    OtlpReceiver(host="0.0.0.0", port_wanted=4318, on_spans=store.add, keep_spans=False).start()
    serve(16686, query)
    serve(14269, health)
    serve(13133, health)
    print(
        f"jaeger stand-in: OTLP/HTTP :4318, query :16686, health :14269 and :13133/status; "
        f"max traces {limit} (config: {path}); other settings are not read",
        flush=True,
    )
    # pid 1 ignores signals it has no handler for: `docker stop` would wait for SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
