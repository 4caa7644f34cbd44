"""A captured assertion opens nothing (docs/identity-assertion.md): bound to its request,
accepted once, dead with its token, and every refusal counted by reason.

The attack: with edge-jwt knocked out (Kong fails open), a client sends an
``X-Identity-Assertion`` copied from gateway→backend traffic, with no token. The counter
``auth_gateway_assertion_rejected_total{reason}`` is how operators see such traffic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from accounts_support import API, make_user
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from identity_support import MemoryIdentityStore, assertion, identity_headers
from prometheus_client import REGISTRY

from auth_backend.accounts.models import User
from auth_backend.identity import store
from auth_backend.tokens.services.issuing import issue_token_pair
from edge_identity.store import REVOCATION_CACHE_SECONDS
from tests.support.services import closed_port

pytestmark = pytest.mark.django_db

PROFILE = API + "profile"
PUBLIC = API + "health/live/"
COUNTER = "auth_gateway_assertion_rejected_total"
REASONS = (
    "missing",
    "bad_signature",
    "expired",
    "wrong_audience",
    "revoked",
    "replayed",
    "mismatched_request",
    "header_mismatch",
    "unavailable",
)


@pytest.fixture
def user() -> User:
    return make_user()


def _counts() -> dict[str, float]:
    return {
        reason: REGISTRY.get_sample_value(COUNTER, {"reason": reason}) or 0.0 for reason in REASONS
    }


@pytest.fixture
def counted() -> Iterator[dict[str, Any]]:
    """``counted["moved"]()``: the reasons whose counter moved since the test began."""
    before = _counts()

    def moved() -> dict[str, float]:
        return {
            reason: value - before[reason]
            for reason, value in _counts().items()
            if value != before[reason]
        }

    yield {"moved": moved}


def _get(client: Any, token: str, path: str = PROFILE, **extra: str) -> int:
    return client.get(path, HTTP_X_IDENTITY_ASSERTION=token, **extra).status_code


def _bound(user: User, method: str = "GET", path: str = PROFILE, **claims: Any) -> str:
    return assertion(user, method=method, path=path, **claims)


# --- each reason, counted exactly once -------------------------------------------------------


def test_every_reason_has_a_series_from_the_start() -> None:
    from auth_backend.identity.assertion import Rejection

    assert {reason.value for reason in Rejection} == set(REASONS)
    for reason in REASONS:
        assert REGISTRY.get_sample_value(COUNTER, {"reason": reason}) is not None


def test_identity_for_says_why_there_is_none(rf, user):
    from auth_backend.identity.assertion import IdentityResult, Rejection, identity_for

    assert identity_for(rf.get(PROFILE)) == IdentityResult(rejection=Rejection.MISSING)
    wrong = rf.get(PROFILE, HTTP_X_IDENTITY_ASSERTION=_bound(user, aud="billing"))
    assert identity_for(wrong) == IdentityResult(rejection=Rejection.WRONG_AUDIENCE)
    valid = identity_for(rf.get(PROFILE, **identity_headers(user)))
    assert valid.rejection is None and valid.identity is not None
    assert valid.identity.subject == str(user.pk)


def test_identity_for_verifies_once_per_request(rf, user, counted):
    """Authentication, the middleware and logout all ask: a second verification of the
    same assertion would be its replay."""
    from auth_backend.identity.assertion import identity_for

    request = rf.get(PROFILE, **identity_headers(user))
    first = identity_for(request)
    assert first.identity is not None
    assert identity_for(request) == first
    assert counted["moved"]() == {}


def test_missing_counts_only_where_an_identity_was_required(client, user, counted):
    assert client.get(PUBLIC).status_code == 200
    assert counted["moved"]() == {}
    response = client.get(PROFILE)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert counted["moved"]() == {"missing": 1}


def test_spoofed_plain_headers_without_assertion_are_missing(client, user, counted):
    assert (
        client.get(
            PROFILE,
            HTTP_X_USER_ID=str(user.pk),
            HTTP_X_USER_EMAIL=user.email,
            HTTP_X_USER_ROLES="user,staff",
        ).status_code
        == 401
    )
    assert counted["moved"]() == {"missing": 1}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda u: _bound(u, key=Ed25519PrivateKey.generate()), "bad_signature"),
        (lambda u: "not.a.jwt", "bad_signature"),
        (lambda u: _bound(u, kid="unknown"), "bad_signature"),
        (lambda u: _bound(u, assertion_id=None), "bad_signature"),  # malformed: claim missing
        (lambda u: _bound(u, exp=int(time.time()) + 600), "bad_signature"),  # lifetime > 60 s
        (lambda u: _bound(u, iat=int(time.time()) - 90, exp=int(time.time()) - 60), "expired"),
        (lambda u: _bound(u, aud="billing"), "wrong_audience"),
        (lambda u: _bound(u, method="PATCH"), "mismatched_request"),
        (lambda u: _bound(u, path=API + "seller/status"), "mismatched_request"),
    ],
)
def test_an_invalid_assertion_counts_its_reason_once(client, user, counted, make, reason):
    assert _get(client, make(user)) == 401
    assert counted["moved"]() == {reason: 1}


def test_an_invalid_assertion_counts_on_a_public_endpoint_too(client, user, counted):
    """Anonymous is fine there, but an assertion that fails is still a sign of trouble."""
    assert _get(client, _bound(user, aud="billing", path=PUBLIC), PUBLIC) == 200
    assert counted["moved"]() == {"wrong_audience": 1}


def test_header_mismatch(client, user, counted):
    token = _bound(user)
    assert _get(client, token, HTTP_X_USER_ROLES="user,staff") == 401
    assert counted["moved"]() == {"header_mismatch": 1}


def test_revoked_token(client, user, counted, identity_store: MemoryIdentityStore):
    token_id = str(uuid.uuid4())
    identity_store.revoked.add(token_id)
    assert _get(client, _bound(user, jti=token_id)) == 401
    assert counted["moved"]() == {"revoked": 1}


def test_replayed_assertion_is_anonymous(client, user, counted):
    token = _bound(user)
    assert _get(client, token) == 200
    assert counted["moved"]() == {}
    assert _get(client, token) == 401
    assert counted["moved"]() == {"replayed": 1}


def test_an_assertion_for_get_profile_does_not_patch_it(client, user, counted):
    token = _bound(user, "GET", PROFILE)
    response = client.patch(
        PROFILE, {"bio": "pwned"}, content_type="application/json", HTTP_X_IDENTITY_ASSERTION=token
    )
    assert response.status_code == 401
    assert counted["moved"]() == {"mismatched_request": 1}
    user.refresh_from_db()
    assert user.bio != "pwned"


def test_the_path_is_compared_decoded_as_the_gateway_escapes_it(client, user, counted):
    """Kong sends the path percent-escaped (upstream_uri); the WSGI server decodes it."""
    assert _get(client, _bound(user, path=API.replace("auth", "%61uth") + "profile")) == 200
    assert _get(client, _bound(user, path=API + "seller%2Fstatus")) == 401  # another path
    assert counted["moved"]() == {"mismatched_request": 1}


# --- the real store: Redis ---------------------------------------------------------------


@pytest.fixture
def redis_store(
    redis_url: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> store.RedisIdentityStore:
    """The production store on the test Redis, with key prefixes of this test only."""
    tag = uuid.uuid4().hex
    settings.IDENTITY_ASSERTION_KEY_PREFIX = f"test.assertion.{tag}"
    settings.REVOCATIONS_KEY_PREFIX = f"test.revoked.{tag}"
    settings.REVOCATIONS_CHANNEL = f"test.revocations.{tag}"
    real = store.RedisIdentityStore()
    monkeypatch.setattr(store, "identity_store", real)
    return real


@pytest.mark.redis
def test_redis_accepts_an_assertion_once_for_its_remaining_life(
    client, user, counted, redis_store, redis_conn, settings
):
    token = _bound(user)
    assert _get(client, token) == 200
    assert _get(client, token) == 401
    assert counted["moved"]() == {"replayed": 1}
    claims = jwt.decode(token, options={"verify_signature": False})
    key = f"{settings.IDENTITY_ASSERTION_KEY_PREFIX}:seen:{claims['assertion_id']}"
    ttl = redis_conn.ttl(key)
    # exp (30 s) + the verification leeway (5 s): never forgotten while it still verifies
    assert 30 <= ttl <= 36


@pytest.mark.redis
def test_after_logout_a_captured_assertion_is_refused_within_a_second(
    client, user, counted, redis_store, django_capture_on_commit_callbacks, monkeypatch
):
    # The store's clock is the test's: "within a second" is the revocation cache's life,
    # stepped over, not waited for and measured.
    now = [0.0]
    monkeypatch.setattr(store, "identity_store", store.RedisIdentityStore(clock=lambda: now[0]))
    pair = issue_token_pair(user)
    token_id = jwt.decode(pair.access_token, options={"verify_signature": False})["jti"]
    captured = _bound(user, jti=token_id)  # in flight when the session ends
    assert client.get(PROFILE, **identity_headers(user, jti=token_id)).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):  # publish as tokens.revocation does
        out = client.post(
            API + "logout",
            {"refresh_token": pair.refresh_token},
            content_type="application/json",
            **identity_headers(user),
        )
    assert out.status_code == 204
    # Within the revocation cache's second, a fresh assertion may still pass; never after.
    now[0] += REVOCATION_CACHE_SECONDS + 0.001
    assert client.get(PROFILE, **identity_headers(user, jti=token_id)).status_code == 401
    before = counted["moved"]().get("revoked", 0)
    assert _get(client, captured) == 401
    assert counted["moved"]()["revoked"] == before + 1


@pytest.mark.redis
def test_a_revocation_that_never_reached_redis_is_refused(client, user, counted, redis_store):
    """A logout while Redis was down has no key in Redis; the database still knows, and a
    captured assertion of the token opens nothing once Redis is back."""
    pair = issue_token_pair(user)
    token_id = jwt.decode(pair.access_token, options={"verify_signature": False})["jti"]
    # The on-commit publish never runs inside the test's transaction: nothing reaches Redis.
    out = client.post(
        API + "logout",
        {"refresh_token": pair.refresh_token},
        content_type="application/json",
        **identity_headers(user),
    )
    assert out.status_code == 204
    assert _get(client, _bound(user, jti=token_id)) == 401
    assert counted["moved"]() == {"revoked": 1}


@pytest.mark.redis
def test_redis_down_means_anonymous_logged_and_counted(
    client, user, counted, redis_store, settings, caplog, monkeypatch
):
    """Fail closed: without Redis neither replay nor revocation can be ruled out."""
    from edge_identity import verifier as module

    monkeypatch.setattr(module, "_last_unavailable_log", 0.0)  # its log is rate-limited
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/15"
    settings.REVOCATIONS_REDIS_TIMEOUT_MS = 300
    with caplog.at_level("WARNING", logger="edge_identity.verifier"):
        assert _get(client, _bound(user)) == 401
    assert counted["moved"]() == {"unavailable": 1}
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    # Public endpoints keep working for anonymous callers.
    assert client.get(PUBLIC).status_code == 200
