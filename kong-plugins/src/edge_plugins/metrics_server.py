"""Prometheus plumbing of a plugin-server process: its endpoint and safe recording.

Each plugin runs in its own server process, so each process serves its own ``/metrics``
from ``prometheus_client``'s default registry. The plugin server starts it before serving
Kong (:func:`serve_metrics`), on the port of its command line's ``--metrics-port``; ``0``
serves none. A taken port is logged, never fatal: requests are served without metrics rather
than not at all. Recording goes through
:func:`safely`: a metric must never fail a request or stop a background worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import start_http_server

log = logging.getLogger(__name__)

_lock = threading.Lock()
_server_port: int | None = None


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


def serve_metrics(port: int) -> None:
    """The plugin server's metrics endpoint at start-up; ``0`` (or less) serves none."""
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
