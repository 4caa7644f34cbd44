"""Minting gateway identity assertions for backend tests (what edge-jwt sends).

The edge mints one assertion per request, bound to its method and upstream path
(docs/identity-assertion.md). ``assertion(user)`` without ``method``/``path`` does the same
lazily: it returns a :class:`PendingAssertion`, which the test client re-mints for the
request that carries it (``backend/tests/conftest.py`` hooks Django's RequestFactory), so
``client.get(url, **identity_headers(user))`` sends an assertion for exactly that request.
An assertion minted with an explicit ``method`` and ``path`` is sent as it is (replays,
mismatches).

The backend's once-only and revocation checks run against :class:`MemoryIdentityStore`
unless a test asks for the real Redis store (``backend/tests/test_identity_binding.py``).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from edge_identity.store import Admission

GATEWAY_KID = "gw-test-1"
GATEWAY_ISSUER = "kong-edge"
ASSERTION_HEADER = "HTTP_X_IDENTITY_ASSERTION"
_PRIVATE_KEY = Ed25519PrivateKey.generate()
# What Kong's uri escape leaves alone in a path (RFC 3986 pchar and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def write_gateway_jwks(
    path: Path, private_key: Ed25519PrivateKey = _PRIVATE_KEY, kid: str = GATEWAY_KID
) -> Path:
    jwk = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
    jwk.update(kid=kid, use="sig", alg="EdDSA")
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def _encode(body: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


class PendingAssertion(str):
    """An assertion to be bound to the request that sends it (its text is a placeholder
    bound to ``GET /``; see :func:`bind_pending_assertion`)."""

    body: dict[str, Any]
    key: Ed25519PrivateKey
    kid: str

    def __new__(cls, body: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> PendingAssertion:
        token = super().__new__(
            cls, _encode({**body, "req_method": "GET", "req_path": "/"}, key, kid)
        )
        token.body, token.key, token.kid = body, key, kid
        return token

    def bind(self, method: str, path: str) -> str:
        """The assertion the edge would send with ``method`` ``path``: a fresh id each time
        (unless the test chose one), as the edge mints one per request."""
        return _encode(
            {
                "assertion_id": secrets.token_urlsafe(16),
                **self.body,
                "req_method": method,
                "req_path": path,
            },
            self.key,
            self.kid,
        )


def bind_pending_assertion(environ: dict[str, Any]) -> dict[str, Any]:
    """Re-mint a :class:`PendingAssertion` in a test request's WSGI environ for that request,
    with the path percent-escaped as Kong sends it (the backend compares it decoded)."""
    pending = environ.get(ASSERTION_HEADER)
    if isinstance(pending, PendingAssertion):
        raw = (environ.get("SCRIPT_NAME", "") + environ["PATH_INFO"]).encode("iso-8859-1")
        environ[ASSERTION_HEADER] = pending.bind(
            environ["REQUEST_METHOD"], quote(raw, safe=_PATH_SAFE)
        )
    return environ


def assertion(
    user: Any = None,
    *,
    key: Ed25519PrivateKey = _PRIVATE_KEY,
    kid: str = GATEWAY_KID,
    method: str | None = None,
    path: str | None = None,
    **claims: Any,
) -> str:
    """An assertion as edge-jwt signs it; ``claims`` override or add (``None`` removes).

    With ``method`` and ``path`` it is bound to that request now; without them (and no
    ``req_method``/``req_path`` in ``claims``) to the request the test client sends it with.
    """
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
    if method is not None or path is not None:
        body.update(req_method=method or "GET", req_path=path or "/")
    body.update(claims)
    if "req_method" not in body and "req_path" not in body:
        return PendingAssertion({k: v for k, v in body.items() if v is not None}, key, kid)
    body = {"assertion_id": secrets.token_urlsafe(16), **body}
    return _encode({k: v for k, v in body.items() if v is not None}, key, kid)


def identity_headers(user: Any, **claims: Any) -> dict[str, str]:
    """Headers as the edge sends them, for Django's test client (``**identity_headers(u)``)."""
    token = assertion(user, **claims)
    decoded = jwt.decode(token, options={"verify_signature": False})
    return {
        ASSERTION_HEADER: token,
        "HTTP_X_USER_ID": decoded["sub"],
        "HTTP_X_USER_EMAIL": decoded["email"],
        "HTTP_X_USER_ROLES": ",".join(decoded["roles"]),
        "HTTP_X_USER_SCOPES": decoded.get("scope", ""),
    }


class MemoryIdentityStore:
    """The backend's identity store without Redis: each assertion id is admitted once,
    and a token id in ``revoked`` is refused."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.revoked: set[str] = set()

    def admit(self, *, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
        if token_id in self.revoked:
            return Admission.REVOKED
        if assertion_id in self.seen:
            return Admission.REPLAYED
        self.seen.add(assertion_id)
        return Admission.ADMITTED
