"""The ASGI middleware, driven as an ASGI server drives it (no framework needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge_identity_support import AUDIENCE, FakeRedis, mint, write_jwks

from edge_identity import AssertionVerifier, GatewayKeys, RedisAssertionStore, Rejection
from edge_identity.asgi import EdgeIdentityMiddleware, request_path
from edge_identity.verifier import cgi_headers


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def verifier(tmp_path: Path, redis: FakeRedis) -> AssertionVerifier:
    store = RedisAssertionStore(
        lambda: redis, seen_key=lambda i: f"seen:{i}", revoked_key=lambda j: f"revoked:{j}"
    )
    keys = GatewayKeys(str(write_jwks(tmp_path / "jwks.json")))
    return AssertionVerifier(keys.key_for, AUDIENCE, store)


class App:
    """An inner ASGI app that records the scope it was called with."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)


def http_scope(path: str = "/orders/1", method: str = "GET", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


async def _run(verifier: AssertionVerifier, scope: dict[str, Any]) -> dict[str, Any]:
    app = App()
    await EdgeIdentityMiddleware(app, verifier=verifier)(scope, _receive, _send)
    (seen,) = app.scopes
    return dict(seen["state"])


async def _receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _send(message: Any) -> None:
    pass


async def test_the_state_carries_the_verified_identity(verifier: AssertionVerifier) -> None:
    state = await _run(verifier, http_scope(**{"x-identity-assertion": mint(jti="t1")}))
    assert state["edge_identity_rejection"] is None
    assert state["edge_identity"].token_id == "t1"


async def test_anonymous_and_invalid_requests_go_on(
    verifier: AssertionVerifier, redis: FakeRedis
) -> None:
    assert (await _run(verifier, http_scope())) == {
        "edge_identity": None,
        "edge_identity_rejection": Rejection.MISSING,
    }
    wrong = await _run(verifier, http_scope(**{"x-identity-assertion": mint(method="POST")}))
    assert wrong["edge_identity_rejection"] is Rejection.MISMATCHED_REQUEST
    assert redis.round_trips == []


async def test_replay_and_spoofed_plain_headers(verifier: AssertionVerifier) -> None:
    token = mint()
    assert (await _run(verifier, http_scope(**{"x-identity-assertion": token})))[
        "edge_identity"
    ] is not None
    replay = await _run(verifier, http_scope(**{"x-identity-assertion": token}))
    assert replay["edge_identity_rejection"] is Rejection.REPLAYED
    spoofed = await _run(
        verifier, http_scope(**{"x-identity-assertion": mint(), "x-user_id": "someone-else"})
    )
    assert spoofed["edge_identity_rejection"] is Rejection.HEADER_MISMATCH


async def test_two_assertion_headers_verify_as_neither(verifier: AssertionVerifier) -> None:
    scope = http_scope()
    scope["headers"] = [(b"x-identity-assertion", mint().encode())] * 2
    state = await _run(verifier, scope)
    assert state["edge_identity_rejection"] is Rejection.BAD_SIGNATURE


async def test_a_websocket_handshake_is_checked_as_a_get(verifier: AssertionVerifier) -> None:
    scope = http_scope("/orders/live", **{"x-identity-assertion": mint(path="/orders/live")})
    scope["type"] = "websocket"
    del scope["method"]
    assert (await _run(verifier, scope))["edge_identity"] is not None


async def test_other_scopes_pass_untouched(verifier: AssertionVerifier) -> None:
    app = App()
    scope = {"type": "lifespan"}
    await EdgeIdentityMiddleware(app, verifier=verifier)(scope, _receive, _send)
    assert app.scopes == [{"type": "lifespan"}]


async def test_existing_state_is_kept(verifier: AssertionVerifier) -> None:
    scope = http_scope()
    scope["state"] = {"db": "pool"}
    state = await _run(verifier, scope)
    assert state["db"] == "pool" and state["edge_identity_rejection"] is Rejection.MISSING


def test_request_path_is_the_whole_decoded_path() -> None:
    assert request_path({"raw_path": b"/svc/caf%C3%A9?x=1", "path": "ignored"}) == "/svc/café"
    assert request_path({"root_path": "/svc", "path": "/orders"}) == "/svc/orders"
    assert request_path({"root_path": "/svc", "path": "/svc/orders"}) == "/svc/orders"


def test_cgi_headers_fold_like_django() -> None:
    environ = cgi_headers([(b"x-user-id", b"a"), (b"x-user_id", b"b"), (b"accept", b"*/*")])
    assert environ == {"HTTP_X_USER_ID": "a,b", "HTTP_ACCEPT": "*/*"}


def test_configured_by_keywords(tmp_path: Path) -> None:
    middleware = EdgeIdentityMiddleware(
        App(),
        jwks=str(write_jwks(tmp_path / "jwks.json")),
        audience=AUDIENCE,
        redis_url="redis://127.0.0.1:1/0",
    )
    assert middleware.verifier.audience == AUDIENCE
