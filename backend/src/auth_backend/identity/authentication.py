"""DRF authentication from the gateway's identity assertion (see assertion.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from auth_backend.identity.assertion import (
    GatewayIdentity,
    identity_for,
    identity_to_end_a_session,
    record_missing_identity,
)


class GatewayAssertionAuthentication(BaseAuthentication):
    """``request.user`` is the asserted, active user; ``request.auth`` the identity.

    No (valid) assertion means anonymous, never an error here: protected views answer 401
    through their permission classes, public views keep working.
    """

    def authenticate(self, request: Request) -> tuple[Any, GatewayIdentity] | None:
        identity = identity_for(request._request).identity
        if identity is None:
            return None
        from auth_backend.accounts.selectors import active_user_by_id

        user = active_user_by_id(identity.subject)
        if user is None:
            return None
        return user, identity

    def authenticate_header(self, request: Request) -> str:
        # DRF asks for the challenge exactly when a view that needs an identity answers 401
        # (APIView.handle_exception on NotAuthenticated): the place that knows one was
        # required. A request that came without any assertion is counted here ("missing");
        # one with an invalid assertion was counted when it was resolved.
        http_request = getattr(request, "_request", request)
        if isinstance(http_request, HttpRequest):
            record_missing_identity(http_request)
        # 401 (not 403) for missing identity; the edge is where credentials are presented.
        return 'Bearer realm="api"'


class SessionEndingAuthentication(GatewayAssertionAuthentication):
    """For logout: :class:`GatewayAssertionAuthentication` that also holds while Redis cannot
    run the once-only and revocation checks (:func:`identity_to_end_a_session`)."""

    def authenticate(self, request: Request) -> tuple[Any, GatewayIdentity] | None:
        identity = identity_to_end_a_session(request._request)
        if identity is None:
            return None
        from auth_backend.accounts.selectors import active_user_by_id

        user = active_user_by_id(identity.subject)
        if user is None:
            return None
        return user, identity


class GatewayIdentityMiddleware:
    """Attach ``request.gateway_identity`` (or None) for non-DRF code paths and logging."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.gateway_identity = identity_for(request).identity
        return self.get_response(request)
