"""Prometheus plumbing of a plugin-server process: its endpoint and safe recording.

Each plugin runs in its own server process, so each process serves its own ``/metrics``
from ``prometheus_client``'s default registry. The plugin server starts it before serving
Kong (:func:`serve_metrics`), on the port of its command line's ``--metrics-port``
(``0`` serves none) and the address of its ``--metrics-address`` (loopback by default).
A taken port is logged, never fatal: requests are served without metrics rather than not
at all. Recording goes through :func:`safely`: a metric must never fail a request or stop
a background worker.

Besides each plugin's own families and ``prometheus_client``'s ``process_*`` (resident
memory, CPU, open files), every endpoint serves ``edge_plugin_greenlets``: the greenlets
alive in the process (kong-pdk runs each event in one under ``-g``), counted when scraped.
A count that keeps growing under steady traffic is a leak of stuck handlers. It also serves
``edge_plugin_certificate_expiry_timestamp_seconds`` for the certificates the plugin loaded
(``edge_plugins.certificates``).
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from greenlet import greenlet
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Loopback unless the operator opens it (--metrics-address): the metrics name routes and
# outcomes, nothing a client on another interface should read.
DEFAULT_ADDRESS = "127.0.0.1"

_lock = threading.Lock()
_server_port: int | None = None
_server_address: str | None = None
_greenlet_gauge: GreenletCollector | None = None
_certificate_gauge: Collector | None = None


def start_metrics_server(port: int, address: str = DEFAULT_ADDRESS) -> None:
    """Serve ``/metrics`` on ``address:port`` once per process; later calls do nothing."""
    global _server_port, _server_address
    with _lock:
        if _server_port is not None:
            if (_server_address, _server_port) != (address, port):
                log.warning(
                    "metrics server already on %s port %s; ignoring %s port %s",
                    _server_address,
                    _server_port,
                    address,
                    port,
                )
            return
        start_http_server(port, addr=address)
        _register_greenlet_gauge()
        _register_certificate_gauge()
        _server_port, _server_address = port, address


def _register_greenlet_gauge() -> None:
    """Add ``edge_plugin_greenlets`` to the default registry, once per process."""
    global _greenlet_gauge
    if _greenlet_gauge is None:
        _greenlet_gauge = GreenletCollector()
        REGISTRY.register(_greenlet_gauge)


def _register_certificate_gauge() -> None:
    """Add ``edge_plugin_certificate_expiry_timestamp_seconds`` (``certificates``), once."""
    global _certificate_gauge
    if _certificate_gauge is None:
        from edge_plugins.certificates import (
            CertificateExpiryCollector,
        )  # it imports safely() from here

        _certificate_gauge = CertificateExpiryCollector()
        REGISTRY.register(_certificate_gauge)


def live_greenlets() -> int:
    """Greenlets started and not finished, the hub and the main one included.

    ``type(obj)``, not ``isinstance``: the heap may hold a ``weakref.proxy`` whose referent
    is gone, and ``isinstance`` asks it for ``__class__``, which raises ``ReferenceError``."""
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), greenlet) and obj)


class GreenletCollector(Collector):
    """``edge_plugin_greenlets``, counted at scrape time (a walk of the GC's objects:
    milliseconds, once per scrape, never on a request's path)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "edge_plugin_greenlets",
            "Greenlets alive in this plugin-server process (kong-pdk runs each event in one)",
            value=live_greenlets(),
        )


def serve_metrics(port: int, address: str = DEFAULT_ADDRESS) -> None:
    """The plugin server's metrics endpoint at start-up; ``0`` (or less) serves none."""
    if port <= 0:
        return
    try:
        start_metrics_server(port, address)
    except OSError as exc:  # port taken: serve requests anyway, say why metrics are gone
        log.error("metrics server not started on %s port %s: %s", address, port, exc)


def children(family: Any) -> Callable[..., Any]:
    """``family.labels(*values)``, each child looked up once per process.

    ``labels()`` checks its arguments and takes the family's lock on every call (~1.5 µs
    warm, several times that in a process that idled between requests); the request path
    asks for the same few children every time. For label values from a fixed set or from
    configuration only: every distinct tuple stays cached, as the family keeps its child.
    """
    return functools.cache(family.labels)


def safely(record: Callable[[], object], family: str) -> None:
    """Run ``record`` (one metric update); an error is logged at debug and swallowed."""
    try:
        record()
    except Exception:  # a metric must never fail a request: log and go on
        log.debug("metric %s not recorded", family, exc_info=True)
