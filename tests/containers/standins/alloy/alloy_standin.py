"""Alloy stand-in: `alloy run [flags] <config>` reads the config file (unreadable, or its
braces or quotes unbalanced: exit 1) and answers /-/ready on --server.http.listen-addr
(default 127.0.0.1:12345, as Alloy's). It collects no logs."""

from __future__ import annotations

import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# strings and comments out of the way before counting braces
TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|//[^\n]*|/\*.*?\*/', re.DOTALL)


def check_config(path: str) -> None:
    with open(path) as config_file:
        text = TOKENS.sub("", config_file.read())
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            raise ValueError("unbalanced '}'")
    if depth or '"' in text:
        raise ValueError("unbalanced braces or an unterminated string")


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print("usage: alloy run [--server.http.listen-addr=HOST:PORT] CONFIG", file=sys.stderr)
        return 2
    listen = "127.0.0.1:12345"
    paths = []
    for arg in argv[1:]:
        if arg.startswith("--server.http.listen-addr="):
            listen = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            paths.append(arg)
    try:
        for path in paths:
            check_config(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f'level=error msg="failed to load config" err="{exc}"', file=sys.stderr, flush=True)
        return 1

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/-/ready"
            body = b"Alloy is ready.\n" if ok else b""
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f'level=info msg="Alloy stand-in ready" addr={listen}', flush=True)
    # pid 1 ignores signals it has no handler for: `docker stop` would wait for SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
