"""Health endpoints (no authentication; the gateway routes ``/api/auth/health/*`` here).

* ``GET /api/auth/health/live/`` -- the process serves requests. Touches no dependency.
  200 ``{"status": "ok"}``.
* ``GET /api/auth/health/ready/`` -- the service can do its work: the database answers
  ``SELECT 1``, Redis answers ``PING``, and the event stream (``EVENTS_STREAM``) would
  accept an ``XADD``. The answer says *only* ready or not: 200 ``{"status": "ok"}``, or 503
  in the error shape (:mod:`auth_backend.core.errors`) with code ``service_unavailable``
  and empty ``details``. Which dependency failed, and how fast each answered, is
  reconnaissance for anyone on the internet (the gateway routes this path), so that report
  is on the internal API only: ``GET /internal/auth/health/ready`` (service API key,
  :class:`auth_backend.internal.views.ReadinessReportView`), built by :func:`readiness`.
  Redis and the event bus give up after ``HEALTH_CHECK_TIMEOUT_MS`` (at most 1 s); the
  database after its connect timeout.

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


_CHECK = inline_serializer(
    "ReadinessCheck",
    {
        "status": serializers.CharField(help_text="`ok` or `unavailable`"),
        "latency_ms": serializers.FloatField(),
    },
)
_EVENT_BUS_CHECK = inline_serializer(
    "EventBusCheck",
    {
        "status": serializers.CharField(help_text="`ok` or `unavailable`"),
        "latency_ms": serializers.FloatField(),
        "oldest_unpublished_age_seconds": serializers.FloatField(allow_null=True),
    },
)


class LiveView(_HealthView):
    @extend_schema(
        responses={200: inline_serializer("Liveness", {"status": serializers.CharField()})}
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


NOT_READY_MESSAGE = "Service is not ready."

READINESS_REPORT = inline_serializer(
    "ReadinessReport",
    {
        "status": serializers.CharField(),
        "checks": inline_serializer(
            "ReadinessChecks", {"database": _CHECK, "redis": _CHECK, "event_bus": _EVENT_BUS_CHECK}
        ),
    },
)


def readiness(*, detailed: bool) -> Response:
    """Run every readiness check; 200, or raise 503 ``service_unavailable``.

    ``detailed`` adds each check's status and latency (``checks``, under
    ``error.details.checks`` on 503): for the internal API only.
    """
    results = readiness_checks()
    ready = all(result.ok for result in results.values())
    if not detailed:
        if not ready:
            raise ServiceUnavailable(NOT_READY_MESSAGE)
        return Response({"status": "ok"})
    checks = {name: result.as_dict() for name, result in results.items()}
    if not ready:
        raise ServiceUnavailable(NOT_READY_MESSAGE, details={"checks": checks})
    return Response({"status": "ok", "checks": checks})


class ReadyView(_HealthView):
    @extend_schema(
        description='Ready or not, nothing more: 200 `{"status": "ok"}` when the '
        "database, Redis and the event stream all answer, else 503 "
        "`service_unavailable` with empty `details`. The per-dependency report "
        "is on the internal API.",
        responses={
            200: inline_serializer("Readiness", {"status": serializers.CharField()}),
            503: OpenApiResponse(description="Not ready: error code `service_unavailable`."),
        },
    )
    def get(self, request: Request) -> Response:
        return readiness(detailed=False)
