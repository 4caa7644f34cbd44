"""URLconf of the internal listener (``GUNICORN_INTERNAL_BIND``, 8081): the service API
under ``/internal/auth/`` and the Django admin under ``/admin/``, never routed by the gateway.
"""

from django.contrib import admin
from django.urls import include, path

from auth_backend.core.urls import handler400, handler403, handler404, handler500  # noqa: F401

urlpatterns = [
    path("internal/auth/", include("auth_backend.internal.urls")),
    path("admin/", admin.site.urls),
]
