"""Revocations announced to the edge over Redis (backend/docs/revocation.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
import redis
from django.utils import timezone
from identity_support import identity_headers

from auth_backend.accounts.models import User
from auth_backend.tokens import revocation
from auth_backend.tokens.exceptions import InvalidAccessToken, InvalidRefreshToken
from auth_backend.tokens.models import RefreshFamily
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.revoking import revoke_all_for_user
from auth_backend.tokens.services.rotation import rotate_refresh_token
from auth_backend.tokens.services.validation import validate_access_token
from tests.support.services import closed_port

pytestmark = pytest.mark.django_db

LOGOUT_URL = "/api/auth/logout"


@pytest.fixture
def user() -> User:
    return User.objects.create_user("barbara@example.com", email_verified_at=timezone.now())


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def channel(redis_url: str, settings) -> Iterator[tuple[redis.client.PubSub, redis.Redis, str]]:
    """A subscription to a per-test revocations channel, and a per-test key prefix."""
    unique = uuid.uuid4().hex
    settings.REVOCATIONS_CHANNEL = f"test.auth.revocations.{unique}"
    settings.REVOCATIONS_KEY_PREFIX = f"test.auth.revoked.{unique}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    pubsub.subscribe(settings.REVOCATIONS_CHANNEL)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    yield pubsub, client, settings.REVOCATIONS_KEY_PREFIX
    pubsub.close()
    for key in client.scan_iter(f"{settings.REVOCATIONS_KEY_PREFIX}:*"):
        client.delete(key)
    client.close()


def _next_message(pubsub: redis.client.PubSub) -> dict:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            return json.loads(message["data"])
    raise AssertionError("no revocation message published")


@pytest.mark.redis
def test_logout_publishes_the_sessions_access_tokens(
    client, user, channel, django_capture_on_commit_callbacks
):
    pubsub, redis_client, prefix = channel
    first = issue_token_pair(user)
    second = rotate_refresh_token(first.refresh_token)
    unrelated = issue_token_pair(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            LOGOUT_URL,
            {"refresh_token": second.refresh_token},
            content_type="application/json",
            **identity_headers(user),
        )
    assert response.status_code == 204

    message = _next_message(pubsub)
    jtis = {_claims(t)["jti"] for t in (first.access_token, second.access_token)}
    assert message["type"] == "revoke"
    assert message["version"] == 1
    assert message["reason"] == "logout"
    assert message["sub"] == str(user.pk)
    assert message["sids"] == [_claims(first.access_token)["sid"]]
    assert set(message["jtis"]) == jtis
    assert _claims(unrelated.access_token)["jti"] not in message["jtis"]
    assert message["exp"] == max(
        _claims(t)["exp"] for t in (first.access_token, second.access_token)
    )
    assert message["not_before"] is None
    assert abs(message["issued_at"] - time.time()) < 10
    # mirrored as expiring keys for edges that were not listening
    for jti in jtis:
        assert redis_client.get(f"{prefix}:jti:{jti}") == "1"
        assert 0 < redis_client.ttl(f"{prefix}:jti:{jti}") <= 900
    assert redis_client.get(f"{prefix}:nbf:{user.pk}") is None


@pytest.mark.redis
def test_nothing_is_published_before_commit_or_after_rollback(
    user, channel, django_capture_on_commit_callbacks
):
    from django.db import transaction

    pubsub, _, _ = channel
    pair = issue_token_pair(user)

    class Rollback(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Rollback), transaction.atomic():
            revoke_all_for_user(user, reason="deactivation")
            raise Rollback
    assert callbacks == []
    assert pubsub.get_message(timeout=0.5) is None
    assert validate_access_token(pair.access_token)  # the rollback undid the revocation


@pytest.mark.redis
def test_revoke_all_publishes_not_before(user, channel, django_capture_on_commit_callbacks):
    pubsub, redis_client, prefix = channel
    pairs = [issue_token_pair(user) for _ in range(2)]
    before = int(time.time())
    with django_capture_on_commit_callbacks(execute=True):
        revoke_all_for_user(user, reason="password_reset")
    message = _next_message(pubsub)
    assert message["reason"] == "password_reset"
    assert before <= message["not_before"] <= int(time.time())
    assert set(message["jtis"]) == {_claims(p.access_token)["jti"] for p in pairs}
    assert len(message["sids"]) == 2
    assert redis_client.get(f"{prefix}:nbf:{user.pk}") == str(message["not_before"])


@pytest.mark.redis
def test_reuse_detection_publishes(user, channel, django_capture_on_commit_callbacks):
    pubsub, _, _ = channel
    pair = issue_token_pair(user)
    rotate_refresh_token(pair.refresh_token)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)
    message = _next_message(pubsub)
    assert message["reason"] == "reuse"
    assert len(message["jtis"]) == 2


# --- Redis unavailable: the database still decides -------------------------------------------


@pytest.fixture
def connection_attempts(monkeypatch) -> list[object]:
    """The socket timeout of every connection attempt redis-py makes (one call per attempt:
    its ``connect()`` retries this under its Retry policy)."""
    attempts: list[object] = []
    real_attempt = redis.connection.AbstractConnection.connect_check_health

    def recording_attempt(self, *args, **kwargs):
        attempts.append(self.socket_timeout)
        return real_attempt(self, *args, **kwargs)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "connect_check_health", recording_attempt
    )
    return attempts


def _logout_with_redis_at(client, user, settings, url, caplog, capture):
    settings.REDIS_URL = url
    settings.REVOCATIONS_REDIS_TIMEOUT_MS = 300
    pair = issue_token_pair(user)
    with (
        caplog.at_level("WARNING", logger="auth_backend.tokens.revocation"),
        capture(execute=True) as callbacks,
    ):
        response = client.post(
            LOGOUT_URL,
            {"refresh_token": pair.refresh_token},
            content_type="application/json",
            **identity_headers(user),
        )
    assert response.status_code == 204
    assert len(callbacks) == 1  # publishing was attempted, and failed
    assert any("not published" in r.getMessage() for r in caplog.records)
    assert RefreshFamily.objects.get().revoked_at is not None
    with pytest.raises(InvalidAccessToken) as excinfo:
        validate_access_token(pair.access_token)
    assert excinfo.value.reason == "revoked"


# What bounds a logout while Redis is away is asserted on the client (the timeout each
# connection attempt gets, and how many attempts there are), not on how long the logout took.


def test_logout_succeeds_when_redis_is_unreachable(
    client, user, settings, caplog, django_capture_on_commit_callbacks, connection_attempts
):
    _logout_with_redis_at(
        client,
        user,
        settings,
        f"redis://127.0.0.1:{closed_port()}/15",
        caplog,
        django_capture_on_commit_callbacks,
    )
    # Refused is tried once more (for a pooled connection Redis dropped), then given up.
    assert connection_attempts == [0.3, 0.3]


def test_logout_succeeds_quickly_when_redis_hangs(
    client,
    user,
    settings,
    caplog,
    django_capture_on_commit_callbacks,
    silent_server,
    connection_attempts,
):
    _logout_with_redis_at(
        client,
        user,
        settings,
        f"redis://127.0.0.1:{silent_server}/15",
        caplog,
        django_capture_on_commit_callbacks,
    )
    # One attempt, bounded by REVOCATIONS_REDIS_TIMEOUT_MS: a timeout is not retried. (The
    # silent server hangs up after 30 s: a client without a timeout fails here, not hangs.)
    assert connection_attempts == [0.3]


def test_publish_reports_failure_instead_of_raising(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/15"
    assert (
        revocation.publish(
            revocation.Revocation(sub="s", reason="logout", jtis=("j",), exp=int(time.time()) + 60)
        )
        is False
    )


def test_empty_revocation_is_not_published(settings, monkeypatch):
    monkeypatch.setattr(revocation, "_client", lambda: pytest.fail("Redis touched"))
    assert revocation.publish(revocation.Revocation(sub="s", reason="logout")) is True


def test_every_message_field_and_reason_is_documented():
    from pathlib import Path

    from auth_backend.tokens.services.revoking import RevokeReason

    doc = (Path(__file__).resolve().parents[2] / "backend" / "docs" / "revocation.md").read_text(
        encoding="utf-8"
    )
    message = revocation.Revocation(sub="s", reason="logout").as_message()
    assert [f for f in message if f"| `{f}` |" not in doc] == []
    reasons = [v for k, v in vars(RevokeReason).items() if k.isupper()]
    assert [r for r in reasons if f"| `{r}` |" not in doc] == []
