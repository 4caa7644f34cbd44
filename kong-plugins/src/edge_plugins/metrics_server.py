"""Prometheus plumbing of a plugin-server process: its endpoint and safe recording.

Each plugin runs in its own server process, so each process serves its own ``/metrics``
from ``prometheus_client``'s default registry. The server starts once, lazily, after a
handler's first PDK call (kong-pdk serialises work done before it), on the port named by
the plugin's environment variable; ``0`` disables it. A taken port is logged, never fatal:
requests are served without metrics rather than not at all. Recording goes through
:func:`safely`: a metric must never fail a request or stop a background worker.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from prometheus_client import start_http_server

log = logging.getLogger(__name__)

_lock = threading.Lock()
_server_port: int | None = None
_attempted = False


def start_metrics_server(port: int) -> None:
    """Serve ``/metrics`` on ``0.0.0.0:port`` once per process; later calls do nothing."""
    global _server_port
    with _lock:
        if _server_port is not None:
            if _server_port != port:
                log.warning("metrics server already on port %s; ignoring port %s",
                            _server_port, port)
            return
        start_http_server(port, addr="0.0.0.0")
        _server_port = port


def start_metrics_once(port_env: str, default_port: int) -> None:
    """Start the server on ``$port_env`` (default ``default_port``) the first time only."""
    global _attempted
    if _attempted:
        return
    with _lock:
        if _attempted:
            return
        _attempted = True
    try:
        port = int(os.environ.get(port_env) or default_port)
    except ValueError:
        log.error("%s is not a port number; metrics disabled", port_env)
        return
    if port <= 0:
        return
    try:
        start_metrics_server(port)
    except OSError as exc:  # port taken: serve requests anyway, say why metrics are gone
        log.error("metrics server not started on port %s: %s", port, exc)


def safely(record: Callable[[], object], family: str) -> None:
    """Run ``record`` (one metric update); an error is logged at debug and swallowed."""
    try:
        record()
    except Exception:  # a metric must never fail a request: log and go on
        log.debug("metric %s not recorded", family, exc_info=True)
