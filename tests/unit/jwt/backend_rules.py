"""The backend's assertion check, restated with PyJWT (auth_backend/identity/assertion.py).

The backend is a separate workspace member with Django settings; importing it here would
drag Django in. These are its rules, one for one, so a change on either side that breaks
the handshake fails here too (the plugin engineer's end-to-end tests run the real one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "PS256")
MAX_ASSERTION_BYTES = 8192
MAX_LIFETIME_SECONDS = 60
SERVICE_NAME = "auth-backend"
GATEWAY_ISSUER = "kong-edge"
LEEWAY_SECONDS = 5


REQUIRED_CLAIMS = [
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "jti",
    "assertion_id",
    "req_method",
    "req_path",
]


def verify_assertion(
    token: str,
    jwks: Mapping[str, Any],
    *,
    service: str = SERVICE_NAME,
    issuer: str = GATEWAY_ISSUER,
    request: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """Claims if the backend would accept the assertion, else ``None`` (= anonymous).

    ``request`` is the (method, path) the backend received; given, the assertion must name
    it. The backend's once-only ``assertion_id`` and revocation checks need its Redis and
    are not restated here.
    """
    if not token or len(token) > MAX_ASSERTION_BYTES:
        return None
    keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks.get("keys", []) if "kid" in jwk}
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALLOWED_ALGORITHMS:
            return None
        key = keys.get(kid)
        if key is None or key.algorithm_name != header["alg"]:
            return None
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[header["alg"]],
            audience=service,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except (jwt.PyJWTError, jwt.PyJWKError, ValueError, TypeError):
        return None
    if not isinstance(claims.get("roles", []), list) or not isinstance(claims["sub"], str):
        return None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        return None
    if request is not None and (claims["req_method"], claims["req_path"]) != request:
        return None
    return claims


def plain_headers_agree(headers: Mapping[str, str], claims: Mapping[str, Any]) -> bool:
    """The backend voids the identity when a plain X-User-* header disagrees."""
    expected = {
        "x-user-id": claims["sub"],
        "x-user-email": str(claims.get("email") or ""),
        "x-user-roles": ",".join(claims.get("roles") or ()),
        "x-user-scopes": " ".join(str(claims.get("scope") or "").split()),
    }
    lowered = {k.lower().replace("_", "-"): v for k, v in headers.items()}
    for name, value in lowered.items():
        if name.startswith("x-user-") and (name not in expected or value != expected[name]):
            return False
    return True
