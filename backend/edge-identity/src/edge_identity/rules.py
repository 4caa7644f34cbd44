"""The identity assertion's verification rules (docs/identity-assertion.md), pure.

Functions of the token, the gateway's keys and the expected issuer and audience: no I/O, no
framework. :class:`~edge_identity.verifier.AssertionVerifier` runs them with the once-only
and revocation checks of :mod:`edge_identity.store`; the gateway's tests check what it signs
with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

import jwt

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
ASSERTION_ID_LENGTH = (16, 128)


class Rejection(StrEnum):
    """Why a request has no gateway identity: the ``reason`` label of
    ``auth_gateway_assertion_rejected_total``."""

    MISSING = "missing"
    # Also anything malformed: unparsable, unknown kid, algorithm, issuer, claims missing or
    # of the wrong type, lifetime over 60 s, issued in the future, oversized.
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"
    REVOKED = "revoked"  # the user token's jti is revoked
    REPLAYED = "replayed"  # this assertion_id was used before
    MISMATCHED_REQUEST = "mismatched_request"  # req_method / req_path name another request
    HEADER_MISMATCH = "header_mismatch"  # a plain X-User-* header disagrees with the claims
    UNAVAILABLE = "unavailable"  # the store could not say whether it is fresh and live


# Which reasons say the edge was bypassed, and which any client can produce through a working
# edge. Alerts page on the first set only (AuthGatewayBypassDetected); the second is a warning
# with a traffic floor (AuthGatewayIdentityRefused), never a page an anonymous client can
# trigger at will (observability/prometheus/rules/auth-backend.yml, docs/runbooks.md).
BYPASS_EVIDENCE: frozenset[Rejection] = frozenset(
    {
        # edge-jwt removes any client X-Identity-Assertion and signs its own with the
        # gateway's key for this service: a bad signature or another audience reached us
        # without passing through it (the backend port is reachable otherwise) or the
        # gateway's keys are misconfigured.
        Rejection.BAD_SIGNATURE,
        Rejection.WRONG_AUDIENCE,
        # edge-jwt removes the client's X-User-* headers and sets its own from the same
        # claims it signs: a mismatch was written after it (a bypass, or a broken edge).
        Rejection.HEADER_MISMATCH,
        # Each request gets a fresh assertion id: a second use is a captured assertion
        # replayed, which needs a copy of what the edge sent upstream.
        Rejection.REPLAYED,
    }
)
CLIENT_SHAPED: frozenset[Rejection] = frozenset(
    {
        # No assertion at a view that needs one: what a request looks like when Kong ran
        # without edge-jwt, but also any anonymous request a client shapes to reach such a
        # view by a route that does not require a token.
        Rejection.MISSING,
        # The request the edge signed for is not the one Django sees: a valid user can send
        # a lower-case method or a raw "#" in the path and get this on purpose.
        Rejection.MISMATCHED_REQUEST,
        # The user revoked the token (logout) and used it again before the edge heard of it.
        Rejection.REVOKED,
        # An assertion lives 60 s: a client that sends its body slowly enough outlives it.
        Rejection.EXPIRED,
    }
)
# Rejection.UNAVAILABLE is neither: Redis is down (an outage with its own alerts).


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

    @classmethod
    def of(cls, claims: Mapping[str, Any]) -> GatewayIdentity:
        """The identity a verified assertion's claims assert."""
        return cls(
            subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            roles=tuple(claims.get("roles") or ()),
            scopes=tuple(str(claims.get("scope") or "").split()),
            token_id=str(claims["jti"]),
        )


KeyLookup = Callable[[str], "jwt.PyJWK | None"]


def key_in(keys: jwt.PyJWKSet | None, kid: str) -> jwt.PyJWK | None:
    """The key with this ``kid`` in a JWKS, if any (a :data:`KeyLookup` over one set)."""
    if keys is None:
        return None
    try:
        return keys[kid]
    except KeyError:
        return None


def verify(
    token: str, key_for: KeyLookup, *, audience: str, issuer: str, leeway: float
) -> dict[str, Any]:
    """The claims of a well-formed assertion signed by a key ``key_for(kid)`` returns.

    Raises :class:`AssertionRejected` (``bad_signature``, ``expired`` or ``wrong_audience``)
    otherwise. The request binding, the plain headers, revocation and the once-only
    ``assertion_id`` are the caller's next checks (:func:`names_request`,
    :func:`plain_headers_agree`).
    """
    if not token or len(token) > MAX_ASSERTION_BYTES:
        raise AssertionRejected(Rejection.BAD_SIGNATURE)
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALLOWED_ALGORITHMS:
            raise AssertionRejected(Rejection.BAD_SIGNATURE)
        key = key_for(kid)
        if key is None or key.algorithm_name != header["alg"]:
            raise AssertionRejected(Rejection.BAD_SIGNATURE)
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[header["alg"]],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
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


def _well_formed(claims: Mapping[str, Any]) -> bool:
    """Types and bounds PyJWT does not check; a signed but odd assertion is still refused."""
    if not isinstance(claims.get("roles", []), list) or not isinstance(claims["sub"], str):
        return False
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        return False
    assertion_id = claims["assertion_id"]
    low, high = ASSERTION_ID_LENGTH
    if not isinstance(assertion_id, str) or not low <= len(assertion_id) <= high:
        return False
    return all(isinstance(claims[name], str) for name in ("jti", "req_method", "req_path"))


def names_request(claims: Mapping[str, Any], method: str, path: str) -> bool:
    """The assertion was minted for this method and (decoded) path.

    ``req_path`` is the path the gateway proxied to us (Kong's ``upstream_uri``, percent-
    escaped); ``path`` is the path we were sent, decoded by the WSGI server, with any script
    prefix (``SCRIPT_NAME``) in front, because the gateway sends the whole path. Both are
    compared decoded. Methods are case-sensitive (RFC 9110 §9.1).
    """
    return claims["req_method"] == method and unquote(claims["req_path"]) == path


_PLAIN_HEADERS: dict[str, Callable[[GatewayIdentity], str]] = {
    "HTTP_X_USER_ID": lambda i: i.subject,
    "HTTP_X_USER_EMAIL": lambda i: i.email,
    "HTTP_X_USER_ROLES": lambda i: ",".join(i.roles),
    "HTTP_X_USER_SCOPES": lambda i: " ".join(i.scopes),
}


def plain_headers_agree(environ: Mapping[str, Any], identity: GatewayIdentity) -> bool:
    """Plain ``X-User-*`` headers are informational; any that disagrees voids the identity.

    ``environ`` holds the request headers as a WSGI server passes them (PEP 3333:
    ``HTTP_X_USER_ID``). Django folds ``X-User_Id`` and ``X-User-Id`` into the same key, so a
    spoofed variant the edge failed to strip is caught here too.
    """
    for key, expected in _PLAIN_HEADERS.items():
        value = environ.get(key)
        if value is not None and value != expected(identity):
            return False
    unknown = [k for k in environ if k.startswith("HTTP_X_USER_") and k not in _PLAIN_HEADERS]
    return not unknown
