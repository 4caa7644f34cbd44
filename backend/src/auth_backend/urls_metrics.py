"""URLconf of the metrics listener (``GUNICORN_METRICS_BIND``, 9100): Prometheus only.

``/metrics`` (Prometheus' default path) and ``/api/auth/metrics`` answer the same.
"""

from auth_backend.core.exposition import metrics_view
from auth_backend.core.urls import handler400, handler403, handler404, handler500, route  # noqa: F401

urlpatterns = [
    route("metrics", metrics_view, name="metrics"),
    route("api/auth/metrics", metrics_view, name="metrics-api-path"),
]
