"""AssertionVerifier with the Redis store: every rule of docs/identity-assertion.md, and the
reason each refusal gives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge_identity_support import AUDIENCE, FakeRedis, mint, write_jwks

from edge_identity import (
    AssertionVerifier,
    GatewayKeys,
    IdentityResult,
    RedisAssertionStore,
    Rejection,
)
from edge_identity import verifier as verifier_module

PATH = "/orders/1"


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def verifier(tmp_path: Path, redis: FakeRedis) -> AssertionVerifier:
    store = RedisAssertionStore(
        lambda: redis,
        seen_key=lambda assertion_id: f"orders.assertion:seen:{assertion_id}",
        revoked_key=lambda jti: f"auth.revoked:jti:{jti}",
    )
    keys = GatewayKeys(str(write_jwks(tmp_path / "jwks.json")))
    return AssertionVerifier(keys.key_for, AUDIENCE, store)


def check(verifier: AssertionVerifier, token: str | None, **headers: str) -> IdentityResult:
    environ = {"HTTP_" + k.upper(): v for k, v in headers.items()}
    if token is not None:
        environ["HTTP_X_IDENTITY_ASSERTION"] = token
    return verifier.verify_request(environ, "GET", PATH)


def test_a_valid_assertion_is_the_identity(verifier: AssertionVerifier) -> None:
    result = check(verifier, mint(jti="tok-1"))
    assert result.rejection is None and result.identity is not None
    identity = result.identity
    assert identity.subject == "6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33"
    assert (identity.email, identity.roles, identity.scopes, identity.token_id) == (
        "ann@example.com",
        ("user", "seller"),
        ("profile", "seller"),
        "tok-1",
    )
    assert identity.has_role("seller") and not identity.has_role("staff")


def test_the_id_is_claimed_for_the_assertions_life_plus_the_leeway(
    verifier: AssertionVerifier, redis: FakeRedis
) -> None:
    token = mint()
    assert check(verifier, token).identity is not None
    assertion_id = jwt.decode(token, options={"verify_signature": False})["assertion_id"]
    key = f"orders.assertion:seen:{assertion_id}"
    assert redis.values[key] == "1"
    assert 30 <= redis.ttls[key] <= 36  # exp (30 s) + 5 s leeway, rounded up
    (round_trip,) = redis.round_trips
    assert [command[0] for command in round_trip] == ["exists", "set"], "one round trip"


INVALID: dict[str, Callable[[], str]] = {
    "bad_signature/other key": lambda: mint(key=Ed25519PrivateKey.generate()),
    "bad_signature/unknown kid": lambda: mint(kid="gw-other"),
    "bad_signature/issuer": lambda: mint(iss="someone"),
    "bad_signature/lifetime": lambda: mint(exp=int(__import__("time").time()) + 120),
    "bad_signature/no assertion_id": lambda: mint(assertion_id=None),
    "bad_signature/oversized": lambda: mint(email="a" * 9000),
    "bad_signature/hs256": lambda: jwt.encode(
        {"sub": "x"}, "secret-secret-secret-secret-secret", headers={"kid": "gw-1"}
    ),
    "expired/expired": lambda: mint(iat=1_000_000_000, exp=1_000_000_030),
    "wrong_audience/billing": lambda: mint(aud="billing"),
    "mismatched_request/method": lambda: mint(method="POST"),
    "mismatched_request/path": lambda: mint(path="/orders/2"),
}


@pytest.mark.parametrize("case", INVALID)
def test_each_invalid_assertion_is_anonymous_with_its_reason(
    verifier: AssertionVerifier, redis: FakeRedis, case: str
) -> None:
    result = check(verifier, INVALID[case]())
    assert result == IdentityResult(rejection=Rejection(case.split("/")[0]))
    assert redis.round_trips == [], "nothing claimed for an assertion that does not verify"


def test_the_path_is_compared_decoded(verifier: AssertionVerifier) -> None:
    token = mint(path="/orders/caf%C3%A9")
    environ = {"HTTP_X_IDENTITY_ASSERTION": token}
    assert verifier.verify_request(environ, "GET", "/orders/café").identity is not None


def test_no_header_is_missing(verifier: AssertionVerifier) -> None:
    assert check(verifier, None) == IdentityResult(rejection=Rejection.MISSING)
    assert check(verifier, "") == IdentityResult(rejection=Rejection.MISSING)


def test_plain_headers_must_agree(verifier: AssertionVerifier) -> None:
    agreeing = check(verifier, mint(), x_user_id="6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33")
    assert agreeing.identity is not None
    other = check(verifier, mint(), x_user_id="someone-else")
    assert other.rejection is Rejection.HEADER_MISMATCH
    unknown = check(verifier, mint(), x_user_admin="1")
    assert unknown.rejection is Rejection.HEADER_MISMATCH


def test_an_assertion_is_accepted_once(verifier: AssertionVerifier) -> None:
    token = mint()
    assert check(verifier, token).identity is not None
    assert check(verifier, token).rejection is Rejection.REPLAYED


def test_a_revoked_token_opens_nothing_and_the_answer_is_cached(
    verifier: AssertionVerifier, redis: FakeRedis
) -> None:
    redis.values["auth.revoked:jti:tok-9"] = "1"
    assert check(verifier, mint(jti="tok-9")).rejection is Rejection.REVOKED
    assert check(verifier, mint(jti="tok-9")).rejection is Rejection.REVOKED
    assert len(redis.round_trips) == 1, "the second answer came from the 1 s cache"


def test_a_live_tokens_answer_is_cached_but_each_id_still_claimed(
    verifier: AssertionVerifier, redis: FakeRedis
) -> None:
    assert check(verifier, mint(jti="tok-5")).identity is not None
    assert check(verifier, mint(jti="tok-5")).identity is not None
    assert [[c[0] for c in trip] for trip in redis.round_trips] == [["exists", "set"], ["set"]]


def test_also_revoked_is_asked_when_redis_has_no_key(tmp_path: Path, redis: FakeRedis) -> None:
    asked: list[str] = []

    def in_database(jti: str) -> bool:
        asked.append(jti)
        return jti == "tok-db"

    store = RedisAssertionStore(
        lambda: redis,
        seen_key=lambda i: f"s:{i}",
        revoked_key=lambda j: f"r:{j}",
        also_revoked=in_database,
    )
    keys = GatewayKeys(str(write_jwks(tmp_path / "jwks.json")))
    verifier = AssertionVerifier(keys.key_for, AUDIENCE, store)
    assert check(verifier, mint(jti="tok-db")).rejection is Rejection.REVOKED
    assert check(verifier, mint(jti="tok-ok")).identity is not None
    assert asked == ["tok-db", "tok-ok"]


def test_store_down_is_anonymous_and_logged_at_most_every_ten_seconds(
    verifier: AssertionVerifier,
    redis: FakeRedis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verifier_module, "_last_unavailable_log", 0.0)
    redis.down = True
    with caplog.at_level(logging.WARNING, logger="edge_identity.verifier"):
        for _ in range(3):
            assert check(verifier, mint()) == IdentityResult(rejection=Rejection.UNAVAILABLE)
    logged = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(logged) == 1


def test_admit_false_skips_only_the_store(verifier: AssertionVerifier, redis: FakeRedis) -> None:
    """For an endpoint that can only end the asserted user's own session: the store is not
    asked (it may be down), every other check still decides."""
    redis.down = True
    token = mint()
    environ = {"HTTP_X_IDENTITY_ASSERTION": token}
    kept = verifier.verify_request(environ, "GET", PATH, admit=False)
    assert kept.identity is not None and redis.round_trips == []
    moved = verifier.verify_request(environ, "GET", "/orders/2", admit=False)
    assert moved.rejection is Rejection.MISMATCHED_REQUEST
    forged = {"HTTP_X_IDENTITY_ASSERTION": token[:-4] + "AAAA"}
    assert verifier.verify_request(forged, "GET", PATH, admit=False).identity is None


def test_from_config_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="redis_url"):
        AssertionVerifier.from_config(jwks=str(tmp_path / "jwks.json"), audience=AUDIENCE)


def test_from_config_names_the_redis_keys_after_the_service(tmp_path: Path) -> None:
    verifier = AssertionVerifier.from_config(
        jwks=str(write_jwks(tmp_path / "jwks.json")),
        audience=AUDIENCE,
        redis_url="redis://127.0.0.1:1/0",  # never connected: the store is not asked here
    )
    store: Any = verifier.store
    assert store._seen_key("abc") == "orders.assertion:seen:abc"
    assert store._revoked_key("j1") == "auth.revoked:jti:j1"
    assert (verifier.issuer, verifier.leeway) == ("kong-edge", 5.0)
