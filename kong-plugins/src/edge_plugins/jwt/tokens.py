"""Finding the access token in a request and deciding whether it is valid.

Extraction (:func:`extract_token`): the configured headers (``Authorization: Bearer …``,
scheme case-insensitive, exactly one token per value), cookies and query parameters. A
request that carries *different* tokens — two sources, or a repeated header — is refused
(RFC 6750 §3.1 ``invalid_request``): which one would the upstream, a log or a cache use?
The same token sent twice is harmless and accepted.

Validation (:func:`verify_token`) goes from cheap to expensive, so junk costs no crypto:

1. size bound (``max_token_bytes``) and shape: three base64url segments, a JSON object
   header, no ``crit``/``b64`` extensions;
2. ``alg`` in the allow-list (``none`` never is) and, once the key is known, among the
   algorithms *that key* may verify — the algorithm is pinned to the key, so an RSA public
   key can never be used as an HMAC secret;
3. ``kid`` required when the keys have kids; unknown kids go through the JWKS manager's
   rate-limited refetch;
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
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import jwt

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import BearerError, InsufficientScope, TokenRejected
from edge_plugins.jwt.jwks import KeySource, VerificationKey

TOKEN_USE_ACCESS = "access"  # noqa: S105 - a claim value
BASE_REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti")
MAX_KID_LENGTH = 256
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization"})
# RFC 6750 §2.1 b64token, which every JWS compact serialization satisfies.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


# --- extraction ---------------------------------------------------------------------------


def _values(headers: Mapping[str, Any], name: str) -> list[str]:
    """All values of a header from Kong's multimap (a string, or a list when repeated)."""
    value = headers.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


def _from_header(name: str, value: str, max_bytes: int) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > max_bytes + len("Bearer "):
        raise TokenRejected("oversized")  # before any regex runs over it
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        token = rest.strip()
        if not token or not _B64TOKEN.fullmatch(token):
            raise TokenRejected("malformed")
        return token
    if name in _AUTH_HEADERS:
        return None  # another scheme (Basic, …): not a bearer token, not ours to judge
    if not _B64TOKEN.fullmatch(value):
        raise TokenRejected("malformed")
    return value  # a dedicated token header may carry the bare token


def _cookies(headers: Mapping[str, Any], names: Sequence[str]) -> Iterable[str]:
    wanted = set(names)
    for header in _values(headers, "cookie"):
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if not sep or name.strip() not in wanted:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                yield value


def _query_params(query: str, names: Sequence[str]) -> Iterable[str]:
    if not query or not names:
        return
    wanted = set(names)
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name in wanted and value:
            yield value


def extract_token(config: JwtConfig, headers: Mapping[str, Any], query: str = "") -> str | None:
    """The request's one access token, ``None`` if it carries none.

    Raises :class:`TokenRejected` (``multiple_tokens``, ``invalid_request``) when it
    carries several different ones, or (``malformed``) when a Bearer value is not a token.
    """
    found: list[str] = []
    for name in config.header_names:
        for value in _values(headers, name):
            token = _from_header(name, value, config.max_token_bytes)
            if token is not None:
                found.append(token)
    if config.cookie_names:
        found.extend(_cookies(headers, config.cookie_names))
    if config.query_param_names:
        found.extend(_query_params(query, config.query_param_names))
    distinct = set(found)
    if len(distinct) > 1:
        raise TokenRejected("multiple_tokens", BearerError.INVALID_REQUEST)
    return found[0] if found else None


# --- validation ---------------------------------------------------------------------------


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
    return float(value)


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


# --- authorization ------------------------------------------------------------------------


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes of a token: the space-separated ``scope`` claim (RFC 8693 §4.2)."""
    scope = claims.get("scope", "")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def granted_roles(claims: Mapping[str, Any]) -> frozenset[str]:
    roles = claims.get("roles", [])
    return (
        frozenset(r for r in roles if isinstance(r, str))
        if isinstance(roles, list)
        else frozenset()
    )


def _satisfies(granted: frozenset[str], required: Sequence[str], mode: str) -> bool:
    if not required:
        return True
    if mode == "any":
        return any(item in granted for item in required)
    return all(item in granted for item in required)


def authorize(config: JwtConfig, claims: Mapping[str, Any]) -> None:
    """The route's scope and role requirements; raises :class:`InsufficientScope` (403)."""
    if not _satisfies(granted_scopes(claims), config.required_scopes, config.scopes_match):
        raise InsufficientScope("insufficient_scope")
    if not _satisfies(granted_roles(claims), config.required_roles, config.roles_match):
        raise InsufficientScope("insufficient_role")
