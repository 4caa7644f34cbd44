"""Loki stand-in: reads -config.file (YAML, must parse, `server.http_listen_port` honoured),
answers /ready, accepts pushes and answers a minimal query.

    GET  /ready                          "ready"
    POST /loki/api/v1/push               JSON streams stored; protobuf (Alloy's snappy
                                         encoding) accepted and counted, not decoded
    GET  /loki/api/v1/query_range?query={label="value",...}   stored JSON lines matching
    GET  /metrics                        loki_standin_pushes_total
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

MAX_ENTRIES = 100_000
MATCHER = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def config_port(argv: list[str]) -> int:
    for arg in argv:
        if arg.startswith("-config.file="):
            path = arg.split("=", 1)[1]
            with open(path) as config_file:  # unreadable or invalid: exit, as Loki would
                config = yaml.safe_load(config_file) or {}
            return int((config.get("server") or {}).get("http_listen_port", 3100))
    return 3100


def main() -> int:
    try:
        port = config_port(sys.argv[1:])
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f'level=error msg="error loading config" err="{exc}"', file=sys.stderr, flush=True)
        return 1
    entries: list[tuple[dict[str, str], str, str]] = []
    counts = {"pushes": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if urlsplit(self.path).path != "/loki/api/v1/push":
                return self.answer(404, b"")
            with lock:
                counts["pushes"] += 1
                if "json" in (self.headers.get("Content-Type") or ""):
                    try:
                        streams = json.loads(body).get("streams") or []
                    except ValueError:
                        return self.answer(400, b'{"message":"invalid JSON"}')
                    for stream in streams:
                        for ts, line, *_ in stream.get("values") or []:
                            entries.append((stream.get("stream") or {}, ts, line))
                    del entries[:-MAX_ENTRIES]
            self.answer(204, b"")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/ready":
                return self.answer(200, b"ready\n", "text/plain")
            if url.path == "/metrics":
                text = f"loki_standin_pushes_total {counts['pushes']}\n".encode()
                return self.answer(200, text, "text/plain")
            if url.path in ("/loki/api/v1/query_range", "/loki/api/v1/query"):
                wanted = dict(MATCHER.findall(parse_qs(url.query).get("query", [""])[0]))
                with lock:
                    matching = [e for e in entries if wanted.items() <= e[0].items()]
                streams = [
                    {"stream": labels, "values": [[ts, line]]} for labels, ts, line in matching
                ]
                result = {"resultType": "streams", "result": streams}
                return self.answer(200, json.dumps({"status": "success", "data": result}).encode())
            self.answer(404, b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f'level=info ts={time.time():.0f} msg="Loki stand-in started" port={port}', flush=True)
    # pid 1 ignores signals it has no handler for: `docker stop` would wait for SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
