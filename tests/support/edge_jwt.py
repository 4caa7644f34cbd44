"""Keys, tokens and configs for the edge-jwt core tests (no Kong, no network)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from edge_identity import rules
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.keys import jwk_thumbprint

NOW = 1_800_000_000  # a fixed "now" (epoch seconds) for every time-dependent check
ISSUER = "https://auth.example.test"
AUDIENCE = "edge-api"
SERVICE = "auth-backend"
GATEWAY_ISSUER = "kong-edge"
SUB = "6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33"


@dataclass(frozen=True)
class RsaKey:
    """An RSA signing key as the backend has one: private key + public JWK with thumbprint kid."""

    private: Any
    jwk: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )


def new_rsa_key(bits: int = 2048) -> RsaKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    full = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public = {name: full[name] for name in ("e", "kty", "n")}
    public.update(kid=jwk_thumbprint(public), alg="RS256", use="sig")
    return RsaKey(private=private, jwk=public)


def jwks_of(*keys: RsaKey) -> dict[str, Any]:
    return {"keys": [dict(key.jwk) for key in keys]}


def access_claims(**overrides: Any) -> dict[str, Any]:
    """Claims like auth_backend.tokens.services.issuing.issue_access_token makes; None removes."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUB,
        "email": "ada@example.test",
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "token_use": "access",
        "amr": ["pwd"],
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def mint(
    key: RsaKey,
    *,
    alg: str = "RS256",
    kid: str | None = "default",
    headers: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """An access token signed by ``key`` (``kid="default"``: the key's own kid)."""
    extra = dict(headers or {})
    if kid == "default":
        extra["kid"] = key.kid
    elif kid is not None:
        extra["kid"] = kid
    return jwt.encode(access_claims(**overrides), key.private, algorithm=alg, headers=extra)


def kong_conf(key_file: Path | str, **overrides: Any) -> dict[str, Any]:
    """A Kong-style config dict (unset optional fields absent); None values are dropped."""
    conf: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "assertion_audience": SERVICE,
        "assertion_signing_key_file": str(key_file),
    }
    conf.update(overrides)
    return {k: v for k, v in conf.items() if v is not None}


def make_config(key_file: Path | str, **overrides: Any) -> JwtConfig:
    return JwtConfig.from_kong(kong_conf(key_file, **overrides))


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class JwksEndpoint:
    """What the local JWKS server answers; thread-safe request counter."""

    document: Any = field(default_factory=lambda: {"keys": []})
    status: int = 200
    cache_control: str | None = "public, max-age=300"
    delay: float = 0.0
    requests: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return self.requests


def serve_jwks(endpoint: JwksEndpoint) -> ThreadingHTTPServer:
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving ``endpoint``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with endpoint.lock:
                endpoint.requests += 1
            if endpoint.delay:
                threading.Event().wait(endpoint.delay)
            body = json.dumps(endpoint.document).encode()
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if endpoint.cache_control:
                self.send_header("Cache-Control", endpoint.cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


# --- the backend's side of the handshake (edge_identity.rules, no Django) ---------------------

BACKEND_LEEWAY_SECONDS = 5  # the backend's IDENTITY_ASSERTION_LEEWAY_SECONDS default


def verify_assertion(
    token: str, jwks: Mapping[str, Any], *, request: tuple[str, str] | None = None
) -> dict[str, Any] | None:
    """Claims if the backend's rules accept the assertion, else ``None`` (= anonymous).

    ``request`` is the (method, decoded path) the backend received; given, the assertion must
    name it. The backend's once-only ``assertion_id`` and revocation checks need its Redis
    and are not run here.
    """
    keys = jwt.PyJWKSet.from_dict(dict(jwks))
    try:
        claims = rules.verify(
            token,
            lambda kid: rules.key_in(keys, kid),
            audience=SERVICE,
            issuer=GATEWAY_ISSUER,
            leeway=BACKEND_LEEWAY_SECONDS,
        )
    except rules.AssertionRejected:
        return None
    if request is not None and not rules.names_request(claims, *request):
        return None
    return claims


def plain_headers_agree(headers: Mapping[str, str], claims: Mapping[str, Any]) -> bool:
    """Whether the backend keeps the identity given these plain ``X-User-*`` headers."""
    environ = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return rules.plain_headers_agree(environ, rules.GatewayIdentity.of(claims))
