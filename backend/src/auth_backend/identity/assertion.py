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

import json
import logging
import math
import threading
import time
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

import jwt
from django.conf import settings
from django.http import HttpRequest

from auth_backend.core.metrics import ASSERTION_REJECTED
from auth_backend.identity import store

log = logging.getLogger(__name__)

ASSERTION_HEADER = "HTTP_X_IDENTITY_ASSERTION"
# Asymmetric algorithms only: an HS* assertion could be forged with the public key.
ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "PS256")
MAX_ASSERTION_BYTES = 8192
MAX_LIFETIME_SECONDS = 60
# Claims every assertion must carry (docs/identity-assertion.md); "jti" is the user token's.
REQUIRED_CLAIMS = (
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "jti",
    "assertion_id",
    "req_method",
    "req_path",
)
# The gateway sends 128 random bits in base64url (22 characters); bound what reaches Redis.
_ASSERTION_ID_LENGTH = (16, 128)
_UNAVAILABLE_LOG_INTERVAL_SECONDS = 10.0
_JWKS_TTL_SECONDS = 300.0
_UNKNOWN_KID_REFRESH_SECONDS = 30.0


class Rejection(StrEnum):
    """Why a request has no gateway identity: the ``reason`` label of
    ``auth_gateway_assertion_rejected_total``."""

    MISSING = "missing"
    # Also anything malformed: unparsable, unknown kid, algorithm, issuer, claims missing or
    # of the wrong type, lifetime over 60 s, issued in the future, oversized.
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"
    REVOKED = "revoked"  # the user token's jti is revoked (backend/docs/revocation.md)
    REPLAYED = "replayed"  # this assertion_id was used before
    MISMATCHED_REQUEST = "mismatched_request"  # req_method / req_path name another request
    HEADER_MISMATCH = "header_mismatch"  # a plain X-User-* header disagrees with the claims
    UNAVAILABLE = "unavailable"  # Redis could not say whether it is fresh and live


for _reason in Rejection:  # every series exists from the start, at 0
    ASSERTION_REJECTED.labels(reason=_reason.value)


class AssertionRejected(Exception):
    """The assertion does not establish an identity, for ``reason``."""

    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class GatewayIdentity:
    """The verified identity of a gateway-routed request."""

    subject: str
    email: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    token_id: str

    def has_role(self, role: str) -> bool:
        return role in self.roles


class _GatewayKeys:
    """The gateway's public keys, loaded lazily and cached per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: str | None = None
        self._keys: dict[str, Any] = {}
        self._loaded_at = 0.0
        self._last_refresh_attempt = 0.0

    def key_for(self, kid: str) -> Any | None:
        source = settings.GATEWAY_JWKS
        now = time.monotonic()
        with self._lock:
            stale = source != self._source or now - self._loaded_at > _JWKS_TTL_SECONDS
            unknown = kid not in self._keys and (
                now - self._last_refresh_attempt > _UNKNOWN_KID_REFRESH_SECONDS
            )
            if stale or unknown:
                self._refresh(source, now)
            return self._keys.get(kid)

    def _refresh(self, source: str, now: float) -> None:
        self._last_refresh_attempt = now
        try:
            document = _read_jwks(source)
            keys = {}
            for jwk in document.get("keys", []):
                if "kid" in jwk:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
        except (OSError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
            # Keep serving with what we had: a flaky key source must not log everyone out.
            log.warning("gateway JWKS unavailable from %s: %s", source, type(exc).__name__)
            if source != self._source:
                self._keys = {}
            return
        self._source, self._keys, self._loaded_at = source, keys, now

    def clear(self) -> None:
        with self._lock:
            self._source, self._keys, self._loaded_at = None, {}, 0.0
            self._last_refresh_attempt = 0.0


def _read_jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=2) as response:  # noqa: S310 - http(s) only
            return json.loads(response.read(256 * 1024))
    with open(source, encoding="utf-8") as handle:
        return json.load(handle)


gateway_keys = _GatewayKeys()


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


def _identity(request: HttpRequest, token: str) -> GatewayIdentity:
    if len(token) > MAX_ASSERTION_BYTES:
        raise AssertionRejected(Rejection.BAD_SIGNATURE)
    claims = _verify(token)
    identity = GatewayIdentity(
        subject=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        roles=tuple(claims.get("roles") or ()),
        scopes=tuple(str(claims.get("scope") or "").split()),
        token_id=str(claims["jti"]),
    )
    if not _names_this_request(request, claims):
        raise AssertionRejected(Rejection.MISMATCHED_REQUEST)
    if not _plain_headers_agree(request, identity):
        raise AssertionRejected(Rejection.HEADER_MISMATCH)
    _admit(claims, identity.token_id)
    return identity


def _verify(token: str) -> dict[str, Any]:
    """The claims of a well-formed, validly signed assertion for this service."""
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALLOWED_ALGORITHMS:
            raise AssertionRejected(Rejection.BAD_SIGNATURE)
        key = gateway_keys.key_for(kid)
        if key is None or key.algorithm_name != header["alg"]:
            raise AssertionRejected(Rejection.BAD_SIGNATURE)
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[header["alg"]],
            audience=settings.SERVICE_NAME,
            issuer=settings.GATEWAY_ISSUER,
            leeway=settings.IDENTITY_ASSERTION_LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise AssertionRejected(Rejection.EXPIRED) from None
    except jwt.InvalidAudienceError:
        raise AssertionRejected(Rejection.WRONG_AUDIENCE) from None
    except (jwt.PyJWTError, jwt.PyJWKError, ValueError, TypeError):
        raise AssertionRejected(Rejection.BAD_SIGNATURE) from None
    if not _well_formed(claims):
        raise AssertionRejected(Rejection.BAD_SIGNATURE)
    return claims


def _well_formed(claims: dict[str, Any]) -> bool:
    """Types and bounds PyJWT does not check; a signed but odd assertion is still refused."""
    if not isinstance(claims.get("roles", []), list) or not isinstance(claims["sub"], str):
        return False
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        return False
    assertion_id = claims["assertion_id"]
    low, high = _ASSERTION_ID_LENGTH
    if not isinstance(assertion_id, str) or not low <= len(assertion_id) <= high:
        return False
    return all(isinstance(claims[name], str) for name in ("jti", "req_method", "req_path"))


def _names_this_request(request: HttpRequest, claims: dict[str, Any]) -> bool:
    """The assertion was minted for this method and path.

    ``req_path`` is the path the gateway proxied to us (Kong's ``upstream_uri``, percent-
    escaped); ``request.path`` is the path we were sent, decoded by the WSGI server, with
    any script prefix (``SCRIPT_NAME``) in front, because the gateway sends the whole path.
    Both are compared decoded. Methods are case-sensitive (RFC 9110 §9.1).
    """
    return claims["req_method"] == request.method and unquote(claims["req_path"]) == request.path


def _admit(claims: dict[str, Any], token_id: str) -> None:
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


_PLAIN_HEADERS = {
    "HTTP_X_USER_ID": lambda i: i.subject,
    "HTTP_X_USER_EMAIL": lambda i: i.email,
    "HTTP_X_USER_ROLES": lambda i: ",".join(i.roles),
    "HTTP_X_USER_SCOPES": lambda i: " ".join(i.scopes),
}


def _plain_headers_agree(request: HttpRequest, identity: GatewayIdentity) -> bool:
    """Plain ``X-User-*`` headers are informational; any that disagrees voids the identity.

    Django folds ``X-User_Id`` and ``X-User-Id`` into the same META key, so a spoofed
    variant the edge failed to strip is caught here too.
    """
    for key, expected in _PLAIN_HEADERS.items():
        value = request.META.get(key)
        if value is not None and value != expected(identity):
            return False
    unknown = [k for k in request.META if k.startswith("HTTP_X_USER_") and k not in _PLAIN_HEADERS]
    return not unknown
