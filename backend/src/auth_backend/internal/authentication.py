"""DRF authentication of the internal API: per-service API keys, nothing else.

Internal views set ``authentication_classes``/``permission_classes`` to the classes below
explicitly, so a gateway identity assertion (the project's default authentication) never
opens the internal API: an assertion speaks for an end user, not for a trusted service.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from auth_backend.internal.exceptions import InvalidApiKey
from auth_backend.internal.keys import caller_for_key

REALM = "internal"
_SCHEME = "bearer"


@dataclass(frozen=True)
class InternalCaller:
    """The service that presented a valid key; ``request.auth`` on internal views."""

    name: str

    def __str__(self) -> str:
        return self.name


class InternalApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` against ``settings.INTERNAL_API_KEYS`` (hashed keys).

    No ``Authorization`` header: anonymous (the permission answers 401 ``not_authenticated``).
    Any other header value -- wrong scheme, no key, unknown key -- is 401 ``invalid_api_key``.
    ``request.user`` stays ``None``: a service is not a user.
    """

    def authenticate(self, request: Request) -> tuple[None, InternalCaller] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != _SCHEME or not credentials or " " in credentials:
            raise InvalidApiKey()
        caller = caller_for_key(credentials, settings.INTERNAL_API_KEYS)
        if caller is None:
            raise InvalidApiKey()
        return None, InternalCaller(caller)

    def authenticate_header(self, request: Request) -> str:
        # RFC 6750 §3: no error code when no credentials were sent.
        if "HTTP_AUTHORIZATION" in request.META:
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'


class HasInternalApiKey(BasePermission):
    """Only callers authenticated by :class:`InternalApiKeyAuthentication`."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, InternalCaller)


def authenticated_caller(request: Request) -> InternalCaller | None:
    """The caller of ``request`` if authentication already ran, without triggering it.

    Reading ``request.auth`` would run authentication, which may raise; this is for logging
    responses, including errors raised before authentication (e.g. content negotiation).
    """
    auth = request.__dict__.get("_auth")
    return auth if isinstance(auth, InternalCaller) else None
