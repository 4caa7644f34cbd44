"""Health endpoints (no authentication; the gateway routes ``/api/auth/health/*`` here).

* ``GET /api/auth/health/live/`` -- the process serves requests. Touches no dependency.
  200 ``{"status": "ok"}``.
* ``GET /api/auth/health/ready/`` -- the service can do its work: the database answers.
  200 ``{"status": "ok", "checks": {"database": "ok"}}``, otherwise 503 in the error shape
  (:mod:`auth_backend.core.errors`) with code ``service_unavailable`` and
  ``details = {"checks": {"database": "unavailable"}}``.

Both answer with and without the trailing slash, and are never cached.
"""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.core.errors import ServiceUnavailable
from auth_backend.health.selectors import database_is_ready


class _HealthView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response


class LiveView(_HealthView):
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyView(_HealthView):
    def get(self, request: Request) -> Response:
        if not database_is_ready():
            raise ServiceUnavailable(
                "Service is not ready.", details={"checks": {"database": "unavailable"}}
            )
        return Response({"status": "ok", "checks": {"database": "ok"}})
