"""Calls that skip the gateway: the backend trusts identity only through a valid assertion.

Straight to the backend's public listener (what a caller inside the network, or a request
proxied while edge-jwt's plugin server is down, looks like), with assertions that are
forged, expired, for another audience, replayed, or bound to another request. Each is
anonymous: the protected route answers the backend's own 401 ``not_authenticated``, and a
write through it changes nothing (docs/identity-assertion.md, rules 1-8).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.security.probes import PROFILE, b64json, b64url, spoofed
from tests.security.stack import Stack
from tests.support.backend import User


def _gateway_key(stack: Stack) -> tuple[Ed25519PrivateKey, str]:
    key = serialization.load_pem_private_key(stack.backend.gateway_key.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    (jwk,) = json.loads(stack.backend.gateway_jwks.read_text())["keys"]
    return key, jwk["kid"]


def _mint(stack: Stack, user: User, **overrides: Any) -> str:
    """An assertion as edge-jwt signs it (docs/identity-assertion.md) for
    ``GET /api/auth/profile``, with the gateway's real key unless ``key`` says otherwise;
    other ``overrides`` change claims (``None`` removes one)."""
    key, kid = _gateway_key(stack)
    key = overrides.pop("key", key)
    kid = overrides.pop("kid", kid)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "kong-edge",
        "aud": "auth-backend",
        "sub": user.id,
        "email": user.email,
        "roles": ["user"],
        "scope": "",
        "jti": str(uuid.uuid4()),
        "assertion_id": secrets.token_urlsafe(16),
        "req_method": overrides.pop("method", "GET"),
        "req_path": overrides.pop("path", PROFILE),
        "iat": now,
        "exp": now + 30,
    }
    claims.update(overrides)
    body = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


def _identity_headers(token: str, user: User) -> dict[str, str]:
    return {
        "X-Identity-Assertion": token,
        "X-User-Id": user.id,
        "X-User-Email": user.email,
        "X-User-Roles": "user",
        "X-User-Scopes": "",
    }


def _direct(
    stack: Stack, headers: dict[str, str], method: str = "GET", **kw: Any
) -> httpx.Response:
    return httpx.request(method, stack.backend.url + PROFILE, headers=headers, timeout=10, **kw)


def _assert_anonymous(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "not_authenticated"  # the backend's own


def test_control_a_fresh_gateway_assertion_is_accepted_once(stack: Stack, user: User) -> None:
    """The control: the gateway's key, this request, never seen — accepted; the very same
    assertion again is a replay."""
    token = _mint(stack, user)
    accepted = _direct(stack, _identity_headers(token, user))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["id"] == user.id
    _assert_anonymous(_direct(stack, _identity_headers(token, user)))


def _forged_hs256(stack: Stack, user: User) -> str:
    """HS256 keyed with the gateway's public key (its JWK ``x``): key confusion."""
    (jwk,) = json.loads(stack.backend.gateway_jwks.read_text())["keys"]
    claims = jwt.decode(_mint(stack, user), options={"verify_signature": False})
    signing_input = f"{b64json({'alg': 'HS256', 'kid': jwk['kid']})}.{b64json(claims)}"
    mac = hmac.new(jwk["x"].encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _alg_none(stack: Stack, user: User) -> str:
    claims = jwt.decode(_mint(stack, user), options={"verify_signature": False})
    return f"{b64json({'alg': 'none'})}.{b64json(claims)}."


ASSERTIONS: dict[str, Callable[[Stack, User], str]] = {
    "forged-other-key-gateway-kid": lambda s, u: _mint(s, u, key=Ed25519PrivateKey.generate()),
    "forged-other-key-unknown-kid": lambda s, u: _mint(
        s, u, key=Ed25519PrivateKey.generate(), kid="gw-evil"
    ),
    "forged-hs256-public-key": _forged_hs256,
    "forged-alg-none": _alg_none,
    "expired": lambda s, u: _mint(s, u, iat=int(time.time()) - 90, exp=int(time.time()) - 60),
    "wrong-audience": lambda s, u: _mint(s, u, aud="another-service"),
    "wrong-issuer": lambda s, u: _mint(s, u, iss="https://auth.local"),
    "lifetime-over-60s": lambda s, u: _mint(s, u, exp=int(time.time()) + 3600),
    "wrong-method": lambda s, u: _mint(s, u, method="POST"),
    "wrong-path": lambda s, u: _mint(s, u, path="/api/auth/seller/status"),
    "no-assertion-id": lambda s, u: _mint(s, u, assertion_id=None),
}


@pytest.mark.parametrize("case", ASSERTIONS)
def test_bad_assertions_straight_to_the_backend(stack: Stack, user: User, case: str) -> None:
    _assert_anonymous(_direct(stack, _identity_headers(ASSERTIONS[case](stack, user), user)))


def test_an_oversized_assertion_is_refused_by_the_server(stack: Stack, user: User) -> None:
    """Over 8 KiB the backend would ignore it (rule 1); gunicorn refuses the header line
    first (``limit_request_field_size`` 8190): 431, no view runs."""
    token = _mint(stack, user, padding="x" * 9000)
    response = _direct(stack, _identity_headers(token, user))
    assert response.status_code == 431, response.text


def test_plain_identity_headers_without_an_assertion(stack: Stack, victim: User) -> None:
    _assert_anonymous(_direct(stack, dict(spoofed(victim)[:4])))


def test_identity_headers_that_differ_from_the_assertion(
    stack: Stack, user: User, victim: User
) -> None:
    """A valid assertion for ``user`` with ``X-User-Id`` naming the victim: anonymous."""
    headers = {**_identity_headers(_mint(stack, user), user), "X-User-Id": victim.id}
    _assert_anonymous(_direct(stack, headers))


def test_an_assertion_captured_at_an_upstream_is_not_replayable(stack: Stack, user: User) -> None:
    """What the tap received — a real gateway assertion for another request — sent to the
    backend with the same identity headers."""
    response = stack.client.get(
        "/sec-rec/probe", headers={"Authorization": f"Bearer {user.access_token}"}
    )
    assert response.status_code == 200, response.text
    captured = {
        k: v
        for k, v in stack.upstream.last["headers"]
        if k.lower().startswith("x-user-") or k.lower() == "x-identity-assertion"
    }
    assert "X-Identity-Assertion" in captured or "x-identity-assertion" in captured
    _assert_anonymous(_direct(stack, captured))


def test_an_assertion_of_a_logged_out_session(stack: Stack, fresh_user: User) -> None:
    """Signed by the gateway, for this request, never seen — but naming a revoked token."""
    jti = jwt.decode(fresh_user.access_token, options={"verify_signature": False})["jti"]
    out = stack.client.post(
        "/api/auth/logout",
        json={"refresh_token": fresh_user.refresh_token},
        headers={"Authorization": f"Bearer {fresh_user.access_token}"},
    )
    assert out.status_code == 204, out.text
    time.sleep(1.1)  # the backend may cache a token's revocation answer for 1 s
    _assert_anonymous(
        _direct(stack, _identity_headers(_mint(stack, fresh_user, jti=jti), fresh_user))
    )


WRITES: dict[str, Callable[[], dict[str, Any]]] = {
    "forged": lambda: {"key": Ed25519PrivateKey.generate()},
    "expired": lambda: {"iat": int(time.time()) - 90, "exp": int(time.time()) - 60},
    "wrong-audience": lambda: {"aud": "another-service"},
    "bound-to-a-read": lambda: {"method": "GET"},
}


@pytest.mark.parametrize("case", WRITES)
def test_a_write_with_a_bad_assertion_changes_nothing(stack: Stack, user: User, case: str) -> None:
    marker = f"pwned-{uuid.uuid4().hex[:8]}"
    token = _mint(stack, user, **{"method": "PATCH", **WRITES[case]()})
    response = _direct(stack, _identity_headers(token, user), "PATCH", json={"bio": marker})
    _assert_anonymous(response)
    profile = stack.client.get(PROFILE, headers={"Authorization": f"Bearer {user.access_token}"})
    assert profile.status_code == 200, profile.text
    assert profile.json()["bio"] != marker


def test_a_replayed_write_is_refused(stack: Stack, user: User) -> None:
    token = _mint(stack, user, method="PATCH")
    first = _direct(stack, _identity_headers(token, user), "PATCH", json={"bio": "first"})
    assert first.status_code == 200, first.text
    marker = f"replayed-{uuid.uuid4().hex[:8]}"
    replay = _direct(stack, _identity_headers(token, user), "PATCH", json={"bio": marker})
    _assert_anonymous(replay)
    profile = stack.client.get(PROFILE, headers={"Authorization": f"Bearer {user.access_token}"})
    assert profile.json()["bio"] == "first"


def test_logout_straight_to_the_backend_needs_an_identity(stack: Stack, fresh_user: User) -> None:
    """The schema and the edge require the access token for logout; the backend's public
    listener too: a refresh token alone, without an assertion, ends nothing."""
    response = httpx.post(
        stack.backend.url + "/api/auth/logout/",
        json={"refresh_token": fresh_user.refresh_token},
        timeout=10,
    )
    _assert_anonymous(response)
    alive = stack.client.post(
        "/api/auth/token/refresh", json={"refresh_token": fresh_user.refresh_token}
    )
    assert alive.status_code == 200, alive.text


def test_control_logout_through_the_gateway_ends_the_session(
    stack: Stack, fresh_user: User
) -> None:
    response = stack.client.post(
        "/api/auth/logout/",
        json={"refresh_token": fresh_user.refresh_token},
        headers={"Authorization": f"Bearer {fresh_user.access_token}"},
    )
    assert response.status_code == 204, response.text
    ended = stack.client.post(
        "/api/auth/token/refresh", json={"refresh_token": fresh_user.refresh_token}
    )
    assert ended.status_code == 401, ended.text
