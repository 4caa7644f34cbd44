"""Root URLconf. Everything this service serves lives under ``/api/auth/``."""

from django.urls import include, path

urlpatterns = [
    path("api/auth/health/", include("auth_backend.health.urls")),
]

# Errors Django handles itself answer in the project's JSON error shape.
handler400 = "auth_backend.core.errors.bad_request"
handler403 = "auth_backend.core.errors.permission_denied"
handler404 = "auth_backend.core.errors.page_not_found"
handler500 = "auth_backend.core.errors.server_error"
