"""Root URLconf (``ROOT_URLCONF``), served on the public listener (``GUNICORN_BIND``, 8080).

Public and protected endpoints live under ``/api/auth/`` (routed by the gateway). The
internal API (``/internal/auth/``) and the Django admin (``/admin/``) are on the internal
listener only (``auth_backend.urls_internal``), the metrics on the metrics listener
(``auth_backend.urls_metrics``): here they are 404 (auth_backend.core.listeners).
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from auth_backend.core.urls import handler400, handler403, handler404, handler500, route  # noqa: F401

urlpatterns = [
    path("api/auth/health/", include("auth_backend.health.urls")),
    path("api/auth/", include("auth_backend.accounts.urls")),
    path("api/auth/", include("auth_backend.tokens.urls")),
    path("api/auth/seller/", include("auth_backend.sellers.urls")),
    route("api/auth/schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    route(
        "api/auth/schema/swagger",
        SpectacularSwaggerView.as_view(url_name="openapi-schema"),
        name="openapi-swagger",
    ),
]
