"""Minting gateway identity assertions for backend tests (what edge-jwt will send)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

GATEWAY_KID = "gw-test-1"
GATEWAY_ISSUER = "kong-edge"
_PRIVATE_KEY = Ed25519PrivateKey.generate()


def write_gateway_jwks(path: Path, private_key: Ed25519PrivateKey = _PRIVATE_KEY,
                       kid: str = GATEWAY_KID) -> Path:
    jwk = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
    jwk.update(kid=kid, use="sig", alg="EdDSA")
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def assertion(user: Any = None, *, key: Ed25519PrivateKey = _PRIVATE_KEY, kid: str = GATEWAY_KID,
              **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": GATEWAY_ISSUER,
        "aud": "auth-backend",
        "iat": now,
        "exp": now + 30,
        "jti": str(uuid.uuid4()),
    }
    if user is not None:
        body.update(sub=str(user.pk), email=user.email, roles=user.roles, scope="")
    body.update(claims)
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


def identity_headers(user: Any, **claims: Any) -> dict[str, str]:
    """Headers as the edge sends them, for Django's test client (``**identity_headers(u)``)."""
    token = assertion(user, **claims)
    decoded = jwt.decode(token, options={"verify_signature": False})
    return {
        "HTTP_X_IDENTITY_ASSERTION": token,
        "HTTP_X_USER_ID": decoded["sub"],
        "HTTP_X_USER_EMAIL": decoded["email"],
        "HTTP_X_USER_ROLES": ",".join(decoded["roles"]),
        "HTTP_X_USER_SCOPES": decoded.get("scope", ""),
    }
