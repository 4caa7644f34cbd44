"""The Prometheus exposition of the backend (``/metrics`` on the metrics listener).

Under gunicorn every worker process records its own metrics, so the exposition uses
prometheus_client's multiprocess mode (its docs, "Multiprocess Mode (E.g. Gunicorn)"):
``backend/gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` in the master before the
workers fork, each worker writes its samples there, and a scrape, whichever worker answers
it, sums every process's files with a ``MultiProcessCollector`` in a fresh registry. A
worker that exits is marked dead (``child_exit``). Without that variable (tests,
``manage.py``) the process's default registry is served.

Gauges computed from the database at scrape time come from
``auth_backend.core.metrics.scrape_time_collectors()`` when that function exists: they are
collected in the answering process only, once per scrape, never from the multiprocess files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from auth_backend.core import metrics


class _Collected:
    """Adapts a registry (or collector) so another registry can collect it."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()


def scrape_registry() -> CollectorRegistry:
    """A registry with this scrape's samples: every worker's (or this process's) metrics and
    the scrape-time collectors."""
    registry = CollectorRegistry(auto_describe=True)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Collected(REGISTRY))
    extra = getattr(metrics, "scrape_time_collectors", None)
    for collector in extra() if callable(extra) else []:
        registry.register(collector)
    return registry


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    output = encoder(scrape_registry())
    return HttpResponse(b"" if request.method == "HEAD" else output, content_type=content_type)
