"""Deciding whether an access token is valid: signature, key and claims.

:func:`verify_token` goes from cheap to expensive, so junk costs no crypto:

1. size bound (``max_token_bytes``) and shape: three base64url segments, a JSON object
   header, no ``crit``/``b64`` extensions;
2. ``alg`` in the allow-list (``none`` never is) and, once the key is known, among the
   algorithms *that key* may verify — the algorithm is pinned to the key, so an RSA public
   key can never be used as an HMAC secret;
3. ``kid`` required when the keys have kids; unknown kids go through the key manager's
   rate-limited refetch (:mod:`.key_manager`);
4. signature, ``iss``, ``aud`` (any configured audience) and required claims with PyJWT;
5. ``exp``/``nbf``/``iat`` against the caller's clock with leeway (our clock, not PyJWT's,
   so tests and the cache agree on *now*), maximum lifetime, ``token_use == "access"``
   (a refresh or ID token is not an access token), and the identity claims' types.

Constant-time comparison: the only secrets compared are HMAC signatures (HS* with inline
``oct`` keys), which PyJWT checks with :func:`hmac.compare_digest`. Nothing else compares a
secret: issuer/audience/kid are public, the verified-token cache looks tokens up by their
SHA-256 digest (a lookup that leaks timing reveals nothing without a pre-image), and
revocation lists hold public ``jti`` values.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import jwt

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import TokenRejected
from edge_plugins.jwt.keys import KeySource, VerificationKey

TOKEN_USE_ACCESS = "access"  # noqa: S105 - a claim value
BASE_REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti")
MAX_KID_LENGTH = 256
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def parse_header(token: str, max_bytes: int) -> dict[str, Any]:
    """The token's JOSE header after the cheap structural checks (no crypto)."""
    if len(token) > max_bytes:
        raise TokenRejected("oversized")
    if not token.isascii():
        raise TokenRejected("malformed")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise TokenRejected("malformed")
    if not parts[0] or not parts[1]:
        raise TokenRejected("malformed")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, binascii.Error, RecursionError):
        raise TokenRejected("malformed") from None
    if not isinstance(header, dict):
        raise TokenRejected("malformed")
    if "crit" in header or "b64" in header:
        raise TokenRejected("malformed")  # extensions we do not implement must not pass
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("malformed")
    if not parts[2] and alg.lower() != "none":
        raise TokenRejected("malformed")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
        raise TokenRejected("malformed")
    return header


_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed"),
    (jwt.DecodeError, "malformed"),
    # PyJWT ≥ 2.10 type-checks sub and jti itself.
    *(
        (kind, "malformed_claims")
        for kind in (
            getattr(jwt.exceptions, "InvalidSubjectError", None),
            getattr(jwt.exceptions, "InvalidJTIError", None),
        )
        if kind is not None
    ),
)


def _decode(token: str, key: VerificationKey, alg: str, config: JwtConfig) -> dict[str, Any]:
    """Signature, ``iss``, ``aud`` and presence of required claims (PyJWT); no time checks."""
    return jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience=list(config.audiences),
        issuer=config.issuer,
        options={
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "require": list(dict.fromkeys((*BASE_REQUIRED_CLAIMS, *config.required_claims))),
        },
    )


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _PYJWT_REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid"


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("malformed_claims")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise TokenRejected("malformed_claims") from None
    if not math.isfinite(number):  # NaN compares false: it would pass every time check
        raise TokenRejected("malformed_claims")
    return number


def check_times(claims: Mapping[str, Any], config: JwtConfig, now: float) -> None:
    """``exp``/``nbf``/``iat`` with leeway, and the maximum lifetime (``exp - iat``)."""
    leeway = config.leeway_seconds
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    nbf = _number(claims, "nbf")
    if exp is None or iat is None:
        raise TokenRejected("missing_claim")
    if now >= exp + leeway:
        raise TokenRejected("expired")
    if (nbf is not None and nbf > now + leeway) or iat > now + leeway:
        raise TokenRejected("not_yet_valid")
    if config.max_lifetime_seconds is not None and exp - iat > config.max_lifetime_seconds:
        raise TokenRejected("lifetime")


def _check_identity_claims(claims: Mapping[str, Any]) -> None:
    """The claims the edge forwards in headers must be well-typed and header-safe."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or not sub.isprintable():
        raise TokenRejected("malformed_claims")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise TokenRejected("malformed_claims")
    email = claims.get("email", "")
    if not isinstance(email, str) or not email.isprintable():
        raise TokenRejected("malformed_claims")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(
        isinstance(r, str) and r.isprintable() and "," not in r for r in roles
    ):
        raise TokenRejected("malformed_claims")
    scope = claims.get("scope", "")
    if not isinstance(scope, str) or not scope.isprintable():
        raise TokenRejected("malformed_claims")


def verify_token(token: str, config: JwtConfig, keys: KeySource, now: float) -> dict[str, Any]:
    """The token's verified claims; raises :class:`TokenRejected` or ``KeysUnavailable``."""
    header = parse_header(token, config.max_token_bytes)
    alg = header["alg"]
    if alg.lower() == "none" or alg not in config.algorithms:
        raise TokenRejected("alg_not_allowed")
    kid = header.get("kid")
    candidates = keys.keys_for(kid)
    if not candidates:
        raise TokenRejected("unknown_kid" if kid is not None else "missing_kid")
    candidates = [key for key in candidates if alg in key.algorithms]
    if not candidates:
        raise TokenRejected("alg_mismatch")
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = _decode(token, key, alg, config)
            break
        except jwt.InvalidSignatureError:
            continue  # several kid-less keys: try the next one
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from None
    if claims is None:
        raise TokenRejected("bad_signature")
    check_times(claims, config, now)
    if claims.get("token_use") != TOKEN_USE_ACCESS:
        raise TokenRejected("token_use")
    _check_identity_claims(claims)
    return claims
