"""alert-sink: logs each JSON webhook Alertmanager POSTs (observability/alertmanager).

One JSON line per notification on stdout (`docker compose logs alert-sink`); GET /healthz
answers 200 for the compose healthcheck. Standard library only; listens on :8080.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_response(413)
            self.end_headers()
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        alerts = payload.get("alerts", []) if isinstance(payload, dict) else []
        print(
            json.dumps(
                {
                    "path": self.path,
                    "status": payload.get("status") if isinstance(payload, dict) else None,
                    "alerts": len(alerts),
                    "payload": payload,
                }
            ),
            flush=True,
        )
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format, *args):
        pass


def main(port: int = 8080) -> None:
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
