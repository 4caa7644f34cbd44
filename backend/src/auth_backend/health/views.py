"""Health endpoints (no authentication; the gateway routes ``/api/auth/health/*`` here).

* ``GET /api/auth/health/live/`` -- the process serves requests. Touches no dependency.
  200 ``{"status": "ok"}``.
* ``GET /api/auth/health/ready/`` -- the service can do its work: the database answers
  ``SELECT 1``, Redis answers ``PING``, and the event stream (``EVENTS_STREAM``) would
  accept an ``XADD``. Each check reports its status and latency; the event bus also reports
  the age of the oldest unpublished outbox event (``null`` when none waits)::

      200 {"status": "ok",
           "checks": {"database": {"status": "ok", "latency_ms": 0.41},
                      "redis": {"status": "ok", "latency_ms": 0.22},
                      "event_bus": {"status": "ok", "latency_ms": 0.35,
                                    "oldest_unpublished_age_seconds": 1.73}}}

  If any check fails: 503 in the error shape (:mod:`auth_backend.core.errors`) with code
  ``service_unavailable`` and the same per-check objects in ``details.checks``, failed
  ones with ``"status": "unavailable"``. Redis and the event bus give up after
  ``HEALTH_CHECK_TIMEOUT_MS`` (at most 1 s); the database after its connect timeout.

Both answer with and without the trailing slash, and are never cached.
"""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.core.errors import ServiceUnavailable
from auth_backend.health.selectors import readiness_checks


class _HealthView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response


_CHECK = inline_serializer("ReadinessCheck", {
    "status": serializers.CharField(help_text="`ok` or `unavailable`"),
    "latency_ms": serializers.FloatField(),
})
_EVENT_BUS_CHECK = inline_serializer("EventBusCheck", {
    "status": serializers.CharField(help_text="`ok` or `unavailable`"),
    "latency_ms": serializers.FloatField(),
    "oldest_unpublished_age_seconds": serializers.FloatField(allow_null=True),
})


class LiveView(_HealthView):
    @extend_schema(responses={200: inline_serializer("Liveness", {
        "status": serializers.CharField()})})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyView(_HealthView):
    @extend_schema(responses={
        200: inline_serializer("Readiness", {
            "status": serializers.CharField(),
            "checks": inline_serializer("ReadinessChecks", {
                "database": _CHECK, "redis": _CHECK, "event_bus": _EVENT_BUS_CHECK}),
        }),
        503: OpenApiResponse(description="Not ready: error code `service_unavailable`, the "
                                         "per-check objects in `error.details.checks`."),
    })
    def get(self, request: Request) -> Response:
        results = readiness_checks()
        checks = {name: result.as_dict() for name, result in results.items()}
        if not all(result.ok for result in results.values()):
            raise ServiceUnavailable("Service is not ready.", details={"checks": checks})
        return Response({"status": "ok", "checks": checks})
