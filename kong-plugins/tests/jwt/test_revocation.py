"""Revocations: the in-memory state, and the subscriber against the real Redis.

Messages and keys are written exactly as auth_backend.tokens.revocation.publish writes them
(backend/docs/revocation.md); each test uses its own channel and key prefix."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from edge_plugins.jwt.revocation import NullRevocations, RedisRevocations, RevocationState
from tests.support.edge_jwt import FakeClock


def _message(
    sub: str,
    *,
    jtis: list[str] = (),
    exp: int | None = None,  # type: ignore[assignment]
    not_before: int | None = None,
    reason: str = "logout",
) -> str:
    return json.dumps(
        {
            "type": "revoke",
            "version": 1,
            "reason": reason,
            "sub": sub,
            "sids": ["s1"],
            "jtis": list(jtis),
            "exp": exp,
            "not_before": not_before,
            "issued_at": int(time.time()),
        },
        separators=(",", ":"),
    )


# A wait, not a bound: generous, so that a loaded machine only makes it slower; how fast a
# revocation arrives is not asserted (it is pushed: see the logout test).
def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# --- in-memory state ----------------------------------------------------------------------


class TestState:
    def test_jtis_are_revoked_until_a_little_after_exp(self) -> None:
        clock = FakeClock(1000)
        state = RevocationState(clock=clock, retain_after_exp=300)
        assert state.apply_message(_message("u1", jtis=["a", "b"], exp=1900))
        assert state.is_revoked("a", "u1", 100) and state.is_revoked("b", "other", 100)
        assert not state.is_revoked("c", "u1", 100)
        clock.advance(900 + 299)
        assert state.is_revoked("a", "u1", 100), "accepted until exp + leeway: keep rejecting"
        clock.advance(1)
        assert not state.is_revoked("a", "u1", 100)
        state.purge()
        assert len(state) == 0

    def test_not_before_rejects_older_tokens_of_the_subject(self) -> None:
        clock = FakeClock(1000)
        state = RevocationState(clock=clock, not_before_ttl=900)
        state.apply_message(_message("u1", not_before=990, reason="password_reset"))
        assert state.is_revoked("x", "u1", 989)
        assert not state.is_revoked("x", "u1", 990)
        assert not state.is_revoked("x", "u2", 989)
        state.apply_message(_message("u1", not_before=980))
        assert state.is_revoked("x", "u1", 985), "the later cut-off wins"
        clock.advance(901)
        assert not state.is_revoked("x", "u1", 100)

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"[]",
            b'{"type":"other","jtis":["a"]}',
            b'{"type":"revoke","jtis":"a"}',
            "\udcff",
        ],
    )
    def test_junk_messages_are_ignored(self, payload: Any) -> None:
        state = RevocationState()
        state.apply_message(payload)
        assert not state.is_revoked("a", "u", 0)

    def test_expired_announcements_are_not_stored(self) -> None:
        state = RevocationState(clock=FakeClock(10_000), retain_after_exp=0)
        state.apply_message(_message("u1", jtis=["old"], exp=5_000))
        assert len(state) == 0

    def test_null_revocations(self) -> None:
        assert NullRevocations().is_revoked("a", "u", 0) is False


# --- against real Redis -------------------------------------------------------------------


def _unique() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def channel_and_prefix(client: redis.Redis) -> Iterator[tuple[str, str]]:
    name = _unique()
    yield f"{name}.revocations", f"{name}.revoked"
    for key in client.scan_iter(match=f"{name}.revoked:*"):
        client.delete(key)


@pytest.fixture
def subscriber(redis_url: str, channel_and_prefix: tuple[str, str]) -> Iterator[RedisRevocations]:
    channel, prefix = channel_and_prefix
    revocations = RedisRevocations(
        redis_url,
        channel,
        key_prefix=prefix,
        backoff=(0.3,),
        client_name=f"edge-jwt-test-{uuid.uuid4().hex[:8]}",
    )
    yield revocations
    revocations.close()


def _publish_like_backend(
    client: redis.Redis,
    channel: str,
    prefix: str,
    sub: str,
    *,
    jtis: list[str] = (),
    exp: int | None = None,  # type: ignore[assignment]
    not_before: int | None = None,
    publish: bool = True,
) -> int:
    """What auth_backend.tokens.revocation.publish does, in one pipeline.

    Returns how many subscribers received the message (0: it was missed)."""
    now = int(time.time())
    pipe = client.pipeline(transaction=False)
    if jtis and exp is not None:
        for jti in jtis:
            pipe.set(f"{prefix}:jti:{jti}", "1", ex=max(exp - now, 1))
    if not_before is not None:
        pipe.set(f"{prefix}:nbf:{sub}", str(not_before), ex=900)
    if publish:
        pipe.publish(channel, _message(sub, jtis=jtis, exp=exp, not_before=not_before))
    results = pipe.execute()
    return int(results[-1]) if publish else 0


@pytest.mark.redis
def test_a_logout_reaches_the_subscriber_by_its_push_alone(
    client: redis.Redis, subscriber: RedisRevocations, channel_and_prefix: tuple[str, str]
) -> None:
    channel, prefix = channel_and_prefix
    assert not subscriber.is_revoked("j1", "u1", time.time())  # starts the subscriber lazily
    assert subscriber.wait_connected(5)
    assert REGISTRY.get_sample_value("edge_jwt_revocation_connected", {"channel": channel}) == 1
    # Only the message, no key: the subscriber learns of the logout from the push itself,
    # which is what makes it immediate (asserted on the path, not on a time bound).
    assert client.publish(channel, _message("u1", jtis=["j1"], exp=int(time.time()) + 900)) == 1
    assert _eventually(lambda: subscriber.is_revoked("j1", "u1", time.time()))
    assert client.exists(f"{prefix}:jti:j1") == 0


@pytest.mark.redis
def test_sign_out_everywhere_sets_a_not_before(
    client: redis.Redis, subscriber: RedisRevocations, channel_and_prefix: tuple[str, str]
) -> None:
    channel, prefix = channel_and_prefix
    subscriber.start()
    assert subscriber.wait_connected(5)
    now = int(time.time())
    _publish_like_backend(client, channel, prefix, "u2", not_before=now)
    assert _eventually(lambda: subscriber.is_revoked("any", "u2", now - 1))
    assert not subscriber.is_revoked("any", "u2", now)


@pytest.mark.redis
def test_a_gateway_that_missed_the_message_catches_up_from_keys(
    client: redis.Redis, subscriber: RedisRevocations, channel_and_prefix: tuple[str, str]
) -> None:
    channel, prefix = channel_and_prefix
    now = int(time.time())
    # Announced before this gateway subscribed: the message is lost, the keys remain.
    assert (
        _publish_like_backend(
            client, channel, prefix, "u3", jtis=["missed-1", "missed-2"], exp=now + 900
        )
        == 0
    )
    assert _publish_like_backend(client, channel, prefix, "u4", not_before=now) == 0
    subscriber.start()
    assert subscriber.wait_connected(5)
    assert subscriber.is_revoked("missed-1", "u3", now)
    assert subscriber.is_revoked("missed-2", "u3", now)
    assert subscriber.is_revoked("other", "u4", now - 1)
    assert not subscriber.is_revoked("other", "u3", now)


@pytest.mark.redis
def test_reconnect_resyncs_what_was_missed_while_disconnected(
    client: redis.Redis, redis_url: str, channel_and_prefix: tuple[str, str]
) -> None:
    channel, prefix = channel_and_prefix
    subscriber = RedisRevocations(
        redis_url,
        channel,
        key_prefix=prefix,
        backoff=(1.0,),
        client_name=f"edge-jwt-test-{uuid.uuid4().hex[:8]}",
    )
    try:
        _reconnect_scenario(client, subscriber, channel, prefix)
    finally:
        subscriber.close()


def _reconnect_scenario(
    client: redis.Redis, subscriber: RedisRevocations, channel: str, prefix: str
) -> None:
    subscriber.start()
    assert subscriber.wait_connected(5)
    ids = [c["id"] for c in client.client_list() if c.get("name") == subscriber.client_name]
    assert ids, "the subscriber's connection is named"
    for client_id in ids:
        client.client_kill_filter(_id=client_id)
    assert _eventually(lambda: not subscriber.connected, timeout=3)
    # Revoked while the gateway is away (reconnect backoff 1 s): only the keys will tell it.
    now = int(time.time())
    assert (
        _publish_like_backend(client, channel, prefix, "u5", jtis=["while-away"], exp=now + 900)
        == 0
    ), "the message was missed"
    assert not subscriber.is_revoked("while-away", "u5", now)
    # The reconnect's resync reads the key the missed message left behind.
    assert _eventually(lambda: subscriber.is_revoked("while-away", "u5", now), timeout=5)
    # And it is subscribed again.
    assert _publish_like_backend(client, channel, prefix, "u5", jtis=["after"], exp=now + 900) == 1
    assert _eventually(lambda: subscriber.is_revoked("after", "u5", now))


def test_redis_down_never_raises_into_the_request_path() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    revocations = RedisRevocations(
        f"redis://127.0.0.1:{port}/0", "chan", backoff=(0.1,), connect_timeout=0.2
    )
    try:
        for _ in range(3):
            assert revocations.is_revoked("j", "u", 0) is False
        time.sleep(0.3)
        assert not revocations.connected
        assert revocations.is_revoked("j", "u", 0) is False
    finally:
        revocations.close()
