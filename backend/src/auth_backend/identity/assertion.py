"""Who the caller is, as the gateway asserts it (docs/identity-assertion.md).

The checks are the ``edge-identity`` package's (:class:`edge_identity.AssertionVerifier`),
the same other services behind the edge install. What is ours: the settings they read
(``GATEWAY_JWKS``, ``SERVICE_NAME``, ``GATEWAY_ISSUER``, ``IDENTITY_ASSERTION_LEEWAY_SECONDS``),
the store with the database's revocation answer (:mod:`auth_backend.identity.store`), and
``auth_gateway_assertion_rejected_total{reason}``, one series per
:class:`~edge_identity.Rejection`.

Checking the assertion id claims it (a second check would see a replay), so
:func:`identity_for` verifies once per request and remembers the answer on the request:
ask it as often as needed.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from auth_backend.core.metrics import ASSERTION_REJECTED
from auth_backend.identity import store
from edge_identity import AssertionVerifier, GatewayIdentity, GatewayKeys, IdentityResult, Rejection

__all__ = [
    "GatewayIdentity",
    "IdentityResult",
    "Rejection",
    "gateway_keys",
    "identity_for",
    "identity_to_end_a_session",
    "record_missing_identity",
]

for _reason in Rejection:  # every series exists from the start, at 0
    ASSERTION_REJECTED.labels(reason=_reason.value)

# Read per lookup: a settings change (tests) switches the source.
gateway_keys = GatewayKeys(lambda: settings.GATEWAY_JWKS)


def verifier() -> AssertionVerifier:
    """The checks as the settings configure them now (cheap: the keys and the store are
    the process-wide ones)."""
    return AssertionVerifier(
        gateway_keys.key_for,
        settings.SERVICE_NAME,
        store.identity_store,
        issuer=settings.GATEWAY_ISSUER,
        leeway=settings.IDENTITY_ASSERTION_LEEWAY_SECONDS,
    )


_RESULT_ATTRIBUTE = "_gateway_identity_result"


def identity_for(request: HttpRequest) -> IdentityResult:
    """The request's verified gateway identity, or the :class:`Rejection` that voids it;
    verified on the first call (claiming the assertion id) and remembered on the request.

    ``request.path`` keeps the script prefix: the gateway binds the whole path it sends.
    A request that carried an assertion and got no identity from it is counted here, on
    any endpoint, once; a request without one only where an identity was required
    (:func:`record_missing_identity`).
    """
    result = getattr(request, _RESULT_ATTRIBUTE, None)
    if isinstance(result, IdentityResult):
        return result
    result = verifier().verify_request(request.META, request.method or "", request.path)
    setattr(request, _RESULT_ATTRIBUTE, result)
    if result.rejection is not None and result.rejection is not Rejection.MISSING:
        ASSERTION_REJECTED.labels(reason=result.rejection.value).inc()
    return result


def record_missing_identity(request: HttpRequest) -> None:
    """Count a request refused for want of an identity it never carried (``missing``)."""
    if identity_for(request).rejection is Rejection.MISSING:
        ASSERTION_REJECTED.labels(reason=Rejection.MISSING.value).inc()


def identity_to_end_a_session(request: HttpRequest) -> GatewayIdentity | None:
    """:func:`identity_for`, but kept when only the Redis step could not run.

    For an endpoint whose only effect is ending the asserted user's own session (logout):
    signature, audience, expiry, the request binding and the plain headers still decide,
    while the once-only and revocation checks are skipped when Redis cannot answer --
    replaying such an assertion could only end that session again, and a revoked token's
    session is ended already. So a logout during a Redis outage still ends the session in
    the database (backend/docs/revocation.md).
    """
    result = identity_for(request)
    if result.rejection is not Rejection.UNAVAILABLE:
        return result.identity
    return (
        verifier()
        .verify_request(request.META, request.method or "", request.path, admit=False)
        .identity
    )
