"""Django middleware: the verified gateway identity on every request.

Configure, in settings::

    MIDDLEWARE = [..., "edge_identity.django.EdgeIdentityMiddleware"]
    EDGE_IDENTITY = {"jwks": "/etc/edge/gateway-jwks.json", "audience": "orders",
                     "redis_url": "redis://redis:6379/0"}

``EDGE_IDENTITY`` holds the keyword arguments of
:meth:`~edge_identity.verifier.AssertionVerifier.from_config`. Each request then carries
``request.edge_identity`` (a :class:`~edge_identity.rules.GatewayIdentity`, or ``None``:
anonymous) and ``request.edge_identity_rejection`` (why there is none, or ``None``). The
middleware never answers by itself: views decide what an anonymous caller gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from edge_identity.verifier import AssertionVerifier, IdentityResult

_RESULT_ATTRIBUTE = "_edge_identity_result"


def identity_for(request: HttpRequest, verifier: AssertionVerifier) -> IdentityResult:
    """The request's identity, verified once and remembered on the request (verifying
    claims the assertion id: a second verification would be a replay)."""
    result = getattr(request, _RESULT_ATTRIBUTE, None)
    if isinstance(result, IdentityResult):
        return result
    result = verifier.verify_request(request.META, request.method or "", request.path)
    setattr(request, _RESULT_ATTRIBUTE, result)
    return result


def verifier_from_settings() -> AssertionVerifier:
    """The verifier ``settings.EDGE_IDENTITY`` describes."""
    config = getattr(settings, "EDGE_IDENTITY", None)
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured("EDGE_IDENTITY must be a dict with jwks, audience and redis_url")
    try:
        return AssertionVerifier.from_config(**config)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"EDGE_IDENTITY: {exc}") from None


class EdgeIdentityMiddleware:
    """Sets ``request.edge_identity`` and ``request.edge_identity_rejection``."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.verifier = verifier_from_settings()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        result = identity_for(request, self.verifier)
        target: Any = request
        target.edge_identity = result.identity
        target.edge_identity_rejection = result.rejection
        return self.get_response(request)
