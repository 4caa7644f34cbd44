"""Who the caller is, as the gateway asserts it (DESIGN.md §3.2).

The edge validates the user's token and sends a compact JWS, ``X-Identity-Assertion``,
signed with the gateway's key. The backend trusts identity **only** through it: signature
against the gateway's public JWKS (a file or a URL), ``iss`` the gateway, ``aud`` this
service, not expired (small leeway), and the plain ``X-User-*`` headers, when present, equal
to the assertion's claims. Anything else is anonymous — which is also what a request that
reached us while a gateway plugin server was down looks like.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.http import HttpRequest

log = logging.getLogger(__name__)

ASSERTION_HEADER = "HTTP_X_IDENTITY_ASSERTION"
# Asymmetric algorithms only: an HS* assertion could be forged with the public key.
ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "PS256")
MAX_ASSERTION_BYTES = 8192
MAX_LIFETIME_SECONDS = 60
_JWKS_TTL_SECONDS = 300.0
_UNKNOWN_KID_REFRESH_SECONDS = 30.0


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
                now - self._last_refresh_attempt > _UNKNOWN_KID_REFRESH_SECONDS)
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


def identity_from_request(request: HttpRequest) -> GatewayIdentity | None:
    """The request's verified gateway identity, or ``None`` (anonymous)."""
    token = request.META.get(ASSERTION_HEADER)
    if not token or len(token) > MAX_ASSERTION_BYTES:
        return None
    claims = _verify(token)
    if claims is None:
        return None
    identity = GatewayIdentity(
        subject=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        roles=tuple(claims.get("roles") or ()),
        scopes=tuple(str(claims.get("scope") or "").split()),
        token_id=str(claims.get("jti") or ""),
    )
    if not _plain_headers_agree(request, identity):
        log.warning("identity headers disagree with the assertion; treating as anonymous")
        return None
    return identity


def _verify(token: str) -> dict[str, Any] | None:
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALLOWED_ALGORITHMS:
            return None
        key = gateway_keys.key_for(kid)
        if key is None or key.algorithm_name != header["alg"]:
            return None
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[header["alg"]],
            audience=settings.SERVICE_NAME,
            issuer=settings.GATEWAY_ISSUER,
            leeway=settings.IDENTITY_ASSERTION_LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
        )
    except (jwt.PyJWTError, jwt.PyJWKError, ValueError, TypeError):
        return None
    if not isinstance(claims.get("roles", []), list) or not isinstance(claims["sub"], str):
        return None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        return None
    return claims


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
