"""Root URLconf.

Public and protected endpoints live under ``/api/auth/`` (routed by the gateway); the
internal API under ``/internal/auth/`` and the Django admin under ``/admin/`` are never
routed by the gateway.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from auth_backend.core.urls import route

urlpatterns = [
    path("api/auth/health/", include("auth_backend.health.urls")),
    path("api/auth/", include("auth_backend.accounts.urls")),
    path("api/auth/", include("auth_backend.tokens.urls")),
    path("api/auth/seller/", include("auth_backend.sellers.urls")),
    route("api/auth/schema", SpectacularAPIView.as_view(), name="openapi-schema"),
    route("api/auth/schema/swagger",
          SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-swagger"),
    path("internal/auth/", include("auth_backend.internal.urls")),
    path("admin/", admin.site.urls),
]

# Errors Django handles itself answer in the project's JSON error shape.
handler400 = "auth_backend.core.errors.bad_request"
handler403 = "auth_backend.core.errors.permission_denied"
handler404 = "auth_backend.core.errors.page_not_found"
handler500 = "auth_backend.core.errors.server_error"
