"""Internal API under ``/internal/auth/`` (service-to-service; the gateway never routes it).

Every endpoint requires ``Authorization: Bearer <service API key>`` (see keys.py); without
it 401 ``not_authenticated``, with a wrong one 401 ``invalid_api_key``, both with
``WWW-Authenticate: Bearer realm="internal"``. Gateway identity assertions are not accepted
here. Every request is logged with the caller's name (``caller``), the endpoint and the
status; responses are ``Cache-Control: no-store``.

* ``GET users/{id}`` -> 200 user; malformed id -> 400 ``invalid_id``; unknown -> 404.
* ``POST users/batch`` ``{"ids": [...]}`` (at most 100) -> 200
  ``{"users": [...], "missing": [...]}``; > 100 -> 400 ``too_many_ids``; malformed ids ->
  400 ``invalid_id`` with ``details.invalid_ids``.
* ``POST validate-token`` ``{"token": "..."}`` -> 200 ``{"active": true, "sub", "email",
  "roles", "scope", "exp", "jti"}`` or 200 ``{"active": false}`` (RFC 7662 style).
* ``GET check-email/{email}`` -> 200 ``{"exists": bool}``.
* ``GET health/ready`` -> 200 ``{"status": "ok", "checks": {...}}`` or 503
  ``service_unavailable`` with ``details.checks``: each dependency's status and latency
  (the public ``/api/auth/health/ready`` says only ready or not).

Examples and the error codes are in the OpenAPI schema at ``GET /internal/auth/schema``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission, OperandHolder, SingleOperandHolder
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from auth_backend.core.metrics import ANONYMOUS_CALLER, INTERNAL_API_REQUESTS
from auth_backend.core.openapi import INTERNAL_SCHEMA_SETTINGS, error_response
from auth_backend.health.views import READINESS_REPORT, readiness
from auth_backend.internal.authentication import (
    HasInternalApiKey,
    InternalApiKeyAuthentication,
    authenticated_caller,
)
from auth_backend.internal.selectors import email_exists, user_by_id, users_by_ids
from auth_backend.internal.serializers import (
    MAX_BATCH_IDS,
    CheckEmailSerializer,
    EmailExistsSerializer,
    InternalUserSerializer,
    IntrospectionSerializer,
    UserBatchRequestSerializer,
    UserBatchResponseSerializer,
    ValidateTokenRequestSerializer,
    parse_user_id,
    parse_user_ids,
)
from auth_backend.internal.services import introspect_access_token

log = logging.getLogger(__name__)

_UNAUTHORIZED = error_response(
    "No API key, or not a configured one.", "not_authenticated", "invalid_api_key"
)
_INVALID_ID = error_response(
    "Malformed user id; `details.invalid_ids` lists the offending values as sent.",
    "invalid_id",
    details={"invalid_id": {"invalid_ids": ["not-a-uuid"]}},
)


class InternalAccessMixin:
    """API-key authentication only, no throttling, no caching, one log line per request."""

    authentication_classes: Sequence[type[BaseAuthentication]] = [InternalApiKeyAuthentication]
    # As APIView declares them: a combination (``A & B``, ``~A``) is an operand holder.
    permission_classes: Sequence[type[BasePermission] | OperandHolder | SingleOperandHolder] = [
        HasInternalApiKey
    ]
    throttle_classes: Sequence[type[BaseThrottle]] = []

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # mypy cannot resolve super() through the mixin into APIView, hence the ignore below
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        response["Cache-Control"] = "no-store"
        caller = authenticated_caller(request)
        match = getattr(request, "resolver_match", None)
        # The route name, stable for aggregation (paths carry ids and addresses).
        log.info(
            "internal request",
            extra={
                "caller": caller.name if caller else None,
                "endpoint": match.url_name if match else None,
                "method": request.method,
                "status": response.status_code,
            },
        )
        # The one place every internal request passes, errors included (a request-level
        # metric: there is no service call for a 401 or a 400).
        INTERNAL_API_REQUESTS.labels(
            caller=caller.name if caller else ANONYMOUS_CALLER, status=str(response.status_code)
        ).inc()
        return response


class InternalAPIView(InternalAccessMixin, APIView):
    pass


class UserDetailView(InternalAPIView):
    @extend_schema(
        operation_id="internal_user_retrieve",
        summary="Look up a user by id",
        description="Includes deactivated users (`is_active: false`).",
        parameters=[OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: InternalUserSerializer,
            400: _INVALID_ID,
            401: _UNAUTHORIZED,
            404: error_response("No user with this id.", "not_found"),
        },
    )
    def get(self, request: Request, user_id: str) -> Response:
        user = user_by_id(parse_user_id(user_id))
        if user is None:
            raise NotFound("No user with this id.")
        return Response(InternalUserSerializer(user).data)


class UserBatchView(InternalAPIView):
    @extend_schema(
        operation_id="internal_users_batch",
        summary="Look up many users by id",
        description=f"At most {MAX_BATCH_IDS} ids; duplicates are looked up once. Users come "
        "back in request order (deactivated ones included); ids without an "
        "account are listed in `missing`.",
        request=UserBatchRequestSerializer,
        responses={
            200: UserBatchResponseSerializer,
            400: error_response(
                f"`ids` is not a list (`invalid`), has more than {MAX_BATCH_IDS} entries "
                "(`too_many_ids`, with `details.max_ids` and `details.received`) or holds "
                "malformed ids (`invalid_id`, with `details.invalid_ids`).",
                "invalid",
                "too_many_ids",
                "invalid_id",
                details={
                    "invalid": {"fields": {"ids": ["This field is required."]}},
                    "too_many_ids": {"max_ids": MAX_BATCH_IDS, "received": 101},
                    "invalid_id": {"invalid_ids": ["not-a-uuid", 42]},
                },
            ),
            401: _UNAUTHORIZED,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = UserBatchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = parse_user_ids(serializer.validated_data["ids"])
        found = users_by_ids(ids)
        return Response(
            {
                "users": InternalUserSerializer(
                    [found[i] for i in ids if i in found], many=True
                ).data,
                "missing": [str(i) for i in ids if i not in found],
            }
        )


class ValidateTokenView(InternalAPIView):
    @extend_schema(
        operation_id="internal_validate_token",
        summary="Introspect an access token",
        description="Checks an access token the way this service would accept it: signature "
        "(current or previous key), issuer, audience, expiry, revocation (logout, "
        "refresh-token reuse, password reset) and an active user. Modelled on "
        "RFC 7662: a bad token is **not** an error -- the answer is 200 "
        '`{"active": false}` with no reason (the reason is logged). Only a '
        "request without a `token` string is 400.",
        request=ValidateTokenRequestSerializer,
        responses={200: IntrospectionSerializer, 401: _UNAUTHORIZED},
        examples=[
            OpenApiExample(
                "active",
                response_only=True,
                value={
                    "active": True,
                    "sub": "0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                    "email": "ada@example.com",
                    "roles": ["user", "seller"],
                    "scope": "profile seller",
                    "exp": 1767225600,
                    "jti": "5d2f8a3e-1b4c-4d6e-9f0a-1b2c3d4e5f60",
                },
            ),
            OpenApiExample("inactive", response_only=True, value={"active": False}),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ValidateTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = introspect_access_token(serializer.validated_data["token"])
        return Response(result.as_response())


class CheckEmailView(InternalAPIView):
    @extend_schema(
        operation_id="internal_check_email",
        summary="Does an account use this email?",
        description="Case-insensitive; deactivated accounts count. Percent-encode the "
        "address in the path (`@` as `%40`, `+` as `%2B`, `/` as `%2F`). "
        "Reveals whether an address is registered, which is why it is internal "
        "only.",
        parameters=[OpenApiParameter("email", OpenApiTypes.EMAIL, OpenApiParameter.PATH)],
        responses={
            200: EmailExistsSerializer,
            400: error_response(
                "Not an email address (`details.fields.email`).",
                "invalid",
                details={"invalid": {"fields": {"email": ["Enter a valid email address."]}}},
            ),
            401: _UNAUTHORIZED,
        },
    )
    def get(self, request: Request, email: str) -> Response:
        # Django has already percent-decoded the path once; decoding again would turn a
        # literal "%40" in an address into "@".
        serializer = CheckEmailSerializer(data={"email": email})
        serializer.is_valid(raise_exception=True)
        return Response({"exists": email_exists(serializer.validated_data["email"])})


class ReadinessReportView(InternalAPIView):
    @extend_schema(
        operation_id="internal_health_ready",
        summary="Readiness, per dependency",
        description="The checks of the public `GET /api/auth/health/ready` (database "
        "`SELECT 1`, Redis `PING`, event stream writable), each with its status "
        "and latency, and the age of the oldest unpublished outbox event "
        "(`null` when none waits; reported, not a readiness condition). Not "
        "ready: 503 `service_unavailable` with the same objects in "
        "`error.details.checks`.",
        responses={
            200: READINESS_REPORT,
            401: _UNAUTHORIZED,
            503: error_response(
                "Not ready; `details.checks` says which dependency.",
                "service_unavailable",
                details={
                    "service_unavailable": {
                        "checks": {"redis": {"status": "unavailable", "latency_ms": 500.3}}
                    }
                },
            ),
        },
    )
    def get(self, request: Request) -> Response:
        return readiness(detailed=True)


class InternalSchemaView(InternalAccessMixin, SpectacularAPIView):
    """OpenAPI schema of the internal API only (YAML, or JSON with ``?format=json``)."""

    custom_settings = INTERNAL_SCHEMA_SETTINGS
