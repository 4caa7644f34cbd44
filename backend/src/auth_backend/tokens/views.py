"""Token endpoints: refresh, logout, JWKS. Thin: services do the work."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.cache import patch_cache_control
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.core.openapi import CLIENT_SCHEME_NAME, error_response
from auth_backend.identity.assertion import GatewayIdentity
from auth_backend.identity.authentication import SessionEndingAuthentication
from auth_backend.identity.callers import authenticated_user
from auth_backend.tokens.keys import jwks_document
from auth_backend.tokens.serializers import (
    JwksSerializer,
    LogoutRequestSerializer,
    RefreshRequestSerializer,
    TokenPairSerializer,
)
from auth_backend.tokens.services import revoking, rotation


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(description=f"{description} (error shape: see core.errors).")


_INVALID = _error("`invalid`: per-field messages in `error.details.fields`")


def _no_store(response: Response) -> Response:
    """Token responses must never be cached (RFC 6749 §5.1)."""
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


class _PublicView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]


class TokenRefreshView(_PublicView):
    @extend_schema(
        operation_id="token_refresh",
        summary="Rotate a refresh token",
        description="Exchanges a refresh token for a new access + refresh token pair. The "
        "presented token stops working. Presenting an already rotated token is "
        "treated as theft: the whole session is revoked. Errors: 401 "
        "`invalid_refresh_token` (unknown, expired, used or revoked).",
        request=RefreshRequestSerializer,
        responses={
            200: TokenPairSerializer,
            400: _INVALID,
            401: _error("`invalid_refresh_token`: unknown, expired, already used or revoked"),
        },
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = rotation.rotate_refresh_token(serializer.validated_data["refresh_token"])
        return _no_store(Response(pair.as_response()))


class LogoutView(APIView):
    """Protected like its gateway route: the caller's identity (the gateway's assertion) is
    required here too, and only the caller's own sessions end."""

    authentication_classes = [SessionEndingAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="logout",
        summary="End a session",
        description="Revokes the caller's session (refresh family) of the given refresh "
        "token, and announces its access tokens as revoked to the edge. Without a "
        "refresh token, ends the session of the access token the gateway validated. "
        "Always 204 for a well-formed request, whether or not the token was "
        "known, already revoked or another account's (which is left alone). Needs "
        "the access token, at the gateway and — as the gateway's identity "
        "assertion — at this service: without it, 401 `not_authenticated`.",
        request=LogoutRequestSerializer,
        # The gateway's route requires the token (kong/kong.yml, `auth-protected`). The value is
        # the operation's OpenAPI security list, whatever extend_schema's annotation says.
        auth=[{CLIENT_SCHEME_NAME: []}],  # type: ignore[list-item]  # annotated as list[str]
        responses={
            204: OpenApiResponse(description="Session ended, or nothing to end."),
            400: _error("`invalid`: a `refresh_token` that is no string"),
            401: error_response("No valid gateway identity.", "not_authenticated"),
        },
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = request.auth if isinstance(request.auth, GatewayIdentity) else None
        revoking.logout(
            authenticated_user(request),
            refresh_token=serializer.validated_data.get("refresh_token"),
            access_token_id=identity.token_id if identity else None,
        )
        return _no_store(Response(status=status.HTTP_204_NO_CONTENT))


class JwksView(_PublicView):
    @extend_schema(
        operation_id="jwks",
        summary="Access-token signing keys (JWKS)",
        description="The public keys that verify access tokens: the current key and the "
        "previous one (kept for tokens signed before the last rotation). "
        "Cacheable; refetch on an unknown `kid`.",
        responses={200: JwksSerializer},
        tags=["tokens"],
    )
    def get(self, request: Request) -> Response:
        response = Response(jwks_document())
        patch_cache_control(response, public=True, max_age=settings.JWKS_MAX_AGE_SECONDS)
        return response
