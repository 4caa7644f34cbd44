"""Who the caller is, as the gateway asserts it (docs/identity-assertion.md).

The edge validates the user's token and sends a compact JWS, ``X-Identity-Assertion``,
signed with the gateway's key. The backend trusts identity **only** through it: signature
against the gateway's public JWKS (a file or a URL), ``iss`` the gateway, ``aud`` this
service, not expired (small leeway), minted for this very request (``req_method`` and
``req_path``), the plain ``X-User-*`` headers, when present, equal to the assertion's
claims, its user token not revoked and its ``assertion_id`` never seen before (Redis,
:mod:`auth_backend.identity.store`). Anything else is anonymous — which is also what a
request that reached us while a gateway plugin server was down looks like — and says why
(:class:`Rejection`), for ``auth_gateway_assertion_rejected_total``.

Checking the assertion id claims it, so an assertion is resolved once per request:
:func:`identity_for` memoises the result on the request; :func:`identity_from_request`
does not and must not be called twice for one request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.http import HttpRequest

from auth_backend.core.metrics import ASSERTION_REJECTED
from auth_backend.identity import rules, store
from auth_backend.identity.rules import AssertionRejected, GatewayIdentity, Rejection

__all__ = [
    "GatewayIdentity",
    "IdentityResult",
    "Rejection",
    "gateway_keys",
    "identity_for",
    "identity_from_request",
    "record_missing_identity",
]

log = logging.getLogger(__name__)

ASSERTION_HEADER = "HTTP_X_IDENTITY_ASSERTION"
_UNAVAILABLE_LOG_INTERVAL_SECONDS = 10.0
JWKS_TTL_SECONDS = 300.0
UNKNOWN_KID_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 2.0


for _reason in Rejection:  # every series exists from the start, at 0
    ASSERTION_REJECTED.labels(reason=_reason.value)


class GatewayKeys:
    """The gateway's public keys from ``GATEWAY_JWKS`` (a file or an http(s) URL), per process.

    Read on first use, again every :data:`JWKS_TTL_SECONDS`, and on an unknown ``kid`` at
    most every :data:`UNKNOWN_KID_REFRESH_SECONDS` (a key rotation, docs/identity-assertion.md
    *Keys*). PyJWT fetches a URL (``PyJWKClient``) and parses either (``PyJWKSet``); a failed
    read keeps the keys already loaded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: str | None = None
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._loaded_at = 0.0
        self._last_refresh_attempt = 0.0

    def key_for(self, kid: str) -> jwt.PyJWK | None:
        source = settings.GATEWAY_JWKS
        now = time.monotonic()
        with self._lock:
            if source != self._source:
                self._use(source)
            stale = now - self._loaded_at > JWKS_TTL_SECONDS
            unknown = rules.key_in(self._keys, kid) is None and (
                now - self._last_refresh_attempt > UNKNOWN_KID_REFRESH_SECONDS
            )
            if stale or unknown:
                self._refresh(now)
            return rules.key_in(self._keys, kid)

    def _use(self, source: str) -> None:
        self._source, self._keys, self._loaded_at = source, None, 0.0
        self._last_refresh_attempt = 0.0
        self._client = None
        if source.startswith(("http://", "https://")):
            # Our TTL and cool-down apply to files and URLs alike: no second cache here.
            self._client = jwt.PyJWKClient(
                source, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_SECONDS
            )

    def _refresh(self, now: float) -> None:
        self._last_refresh_attempt = now
        try:
            if self._client is not None:
                keys = self._client.get_jwk_set()
            else:
                with open(str(self._source), encoding="utf-8") as handle:
                    keys = jwt.PyJWKSet.from_json(handle.read())
        except (
            OSError,
            ValueError,
            jwt.PyJWKClientError,
            jwt.PyJWKError,
            jwt.PyJWKSetError,
        ) as exc:
            # Keep serving with what we had: a flaky key source must not log everyone out.
            log.warning("gateway JWKS unavailable from %s: %s", self._source, type(exc).__name__)
            return
        self._keys, self._loaded_at = keys, now

    def clear(self) -> None:
        with self._lock:
            self._source, self._client, self._keys, self._loaded_at = None, None, None, 0.0
            self._last_refresh_attempt = 0.0


gateway_keys = GatewayKeys()


@dataclass(frozen=True)
class IdentityResult:
    """A verified identity, or why there is none."""

    identity: GatewayIdentity | None = None
    rejection: Rejection | None = None


_RESULT_ATTRIBUTE = "_gateway_identity_result"


def identity_for(request: HttpRequest) -> IdentityResult:
    """The request's identity, resolved once and remembered on the request.

    A request that carried an assertion and got no identity from it is counted here, on
    any endpoint, once; a request without one only where an identity was required
    (:func:`record_missing_identity`).
    """
    result = getattr(request, _RESULT_ATTRIBUTE, None)
    if isinstance(result, IdentityResult):
        return result
    result = identity_from_request(request)
    setattr(request, _RESULT_ATTRIBUTE, result)
    if result.rejection is not None and result.rejection is not Rejection.MISSING:
        ASSERTION_REJECTED.labels(reason=result.rejection.value).inc()
    return result


def record_missing_identity(request: HttpRequest) -> None:
    """Count a request refused for want of an identity it never carried (``missing``)."""
    if identity_for(request).rejection is Rejection.MISSING:
        ASSERTION_REJECTED.labels(reason=Rejection.MISSING.value).inc()


def identity_from_request(request: HttpRequest) -> IdentityResult:
    """The request's verified gateway identity, or the :class:`Rejection` that voids it.

    Claims the assertion's id in Redis: call it once per request (see :func:`identity_for`).
    """
    token = request.META.get(ASSERTION_HEADER)
    if not token:
        return IdentityResult(rejection=Rejection.MISSING)
    try:
        identity = _identity(request, token)
    except AssertionRejected as exc:
        if exc.reason is not Rejection.UNAVAILABLE:
            log.warning(
                "gateway identity assertion rejected; treating as anonymous",
                extra={"reason": exc.reason.value},
            )
        return IdentityResult(rejection=exc.reason)
    return IdentityResult(identity=identity)


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
    try:
        return _identity(request, request.META.get(ASSERTION_HEADER) or "", admit=False)
    except AssertionRejected:
        return None


def _identity(request: HttpRequest, token: str, *, admit: bool = True) -> GatewayIdentity:
    claims = rules.verify(
        token,
        gateway_keys.key_for,
        audience=settings.SERVICE_NAME,
        issuer=settings.GATEWAY_ISSUER,
        leeway=settings.IDENTITY_ASSERTION_LEEWAY_SECONDS,
    )
    identity = GatewayIdentity.of(claims)
    if not rules.names_request(claims, request.method or "", request.path):
        raise AssertionRejected(Rejection.MISMATCHED_REQUEST)
    if not rules.plain_headers_agree(request.META, identity):
        raise AssertionRejected(Rejection.HEADER_MISMATCH)
    if admit:
        _admit(claims, identity.token_id)
    return identity


def _admit(claims: Mapping[str, Any], token_id: str) -> None:
    """Claim the assertion id unless it was used before or its user token is revoked."""
    # Remember the id for as long as the assertion could still verify here.
    ttl = max(
        1, math.ceil(claims["exp"] + settings.IDENTITY_ASSERTION_LEEWAY_SECONDS - time.time())
    )
    try:
        admission = store.admit(
            assertion_id=claims["assertion_id"], token_id=token_id, ttl_seconds=ttl
        )
    except store.IdentityStoreUnavailable as exc:
        _log_unavailable(str(exc))
        raise AssertionRejected(Rejection.UNAVAILABLE) from None
    if admission is store.Admission.REVOKED:
        raise AssertionRejected(Rejection.REVOKED)
    if admission is store.Admission.REPLAYED:
        raise AssertionRejected(Rejection.REPLAYED)


_last_unavailable_log = 0.0


def _log_unavailable(error: str) -> None:
    """Log Redis failures at most every few seconds: during an outage every identity-bearing
    request fails the same way, and the counter has the numbers."""
    global _last_unavailable_log
    now = time.monotonic()
    if now - _last_unavailable_log < _UNAVAILABLE_LOG_INTERVAL_SECONDS:
        return
    _last_unavailable_log = now
    log.warning(
        "identity checks unavailable (Redis); requests with a gateway identity are "
        "anonymous until it answers",
        extra={"error": error},
    )
