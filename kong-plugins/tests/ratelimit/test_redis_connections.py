"""ConnectionStack against the real Redis: bounded, LIFO, and never hands out a dead socket.

A Redis restart is played by ``tests.support.redis_proxy.RedisProxy`` ("refuse" resets every
open connection, then "pass" listens again).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from edge_plugins.ratelimit.limits import Limit
from edge_plugins.ratelimit.redis_connections import ConnectionStack
from edge_plugins.ratelimit.redis_store import RedisLimiter, RedisSettings
from tests.support.redis_proxy import RedisProxy
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require

pytestmark = pytest.mark.redis

# A hang guard for threads, never an assertion: each join ends at once when the stack works.
HANG_GUARD_SECONDS = 30.0
# How long acquire() may wait for a free connection: the property under test is that it
# gives up (and with what), not how long that took.
WAIT_SECONDS = 0.05


@pytest.fixture(autouse=True)
def _redis() -> None:
    require(redis_unavailable())


@pytest.fixture
def pool() -> Iterator[redis.ConnectionPool]:
    pool = redis.BlockingConnectionPool.from_url(REDIS_TEST_URL, socket_timeout=2)
    yield pool
    pool.disconnect()


def ping(conn: Any) -> object:
    conn.send_command("PING")
    return conn.read_response()


def test_a_returned_connection_is_the_next_one_out(pool: redis.ConnectionPool) -> None:
    stack = ConnectionStack(pool, size=4, wait=WAIT_SECONDS)
    first = stack.acquire()
    assert ping(first) in (b"PONG", "PONG")
    stack.release(first)
    again = stack.acquire()
    assert again is first
    stack.release(again)
    stack.close()


def test_at_most_size_connections_then_no_connection_available(
    pool: redis.ConnectionPool,
) -> None:
    stack = ConnectionStack(pool, size=2, wait=WAIT_SECONDS)
    held = [stack.acquire(), stack.acquire()]
    assert held[0] is not held[1]
    with pytest.raises(redis.ConnectionError, match="No connection available"):
        stack.acquire()
    stack.release(held.pop())
    held.append(stack.acquire())  # the one given back, not a third
    assert len({id(conn) for conn in held}) == 2
    for conn in held:
        stack.release(conn)
    stack.close()


def test_a_waiting_caller_gets_the_connection_given_back(pool: redis.ConnectionPool) -> None:
    # The waiter would wait longer than the guard: only the release's notify ends it in time.
    stack = ConnectionStack(pool, size=1, wait=2 * HANG_GUARD_SECONDS)
    held = stack.acquire()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(stack.acquire()), daemon=True)
    waiter.start()
    # Released only once the waiter is counted as waiting, so the release must wake it.
    for _ in range(int(HANG_GUARD_SECONDS * 1000)):
        if stack._waiting:
            break
        threading.Event().wait(0.001)
    stack.release(held)
    waiter.join(HANG_GUARD_SECONDS)
    assert got == [held]
    stack.release(got[0])
    stack.close()


def test_a_connection_that_failed_to_connect_is_given_back() -> None:
    dead = redis.BlockingConnectionPool(host="127.0.0.1", port=1, socket_connect_timeout=1)
    stack = ConnectionStack(dead, size=1, wait=WAIT_SECONDS)
    for _ in range(3):  # the one slot is free again after each failure
        with pytest.raises(redis.ConnectionError, match="Error"):
            stack.acquire()
    assert stack._idle and not stack._waiting


def test_a_redis_restart_between_decisions_fails_none() -> None:
    """Redis restarts while the limiter is idle: its connections are dead, and the next
    decisions must reconnect instead of failing (and counting towards the breaker)."""
    with RedisProxy(6379) as proxy:
        limiter = RedisLimiter(
            RedisSettings(
                url=proxy.url(15), key_prefix=f"test-rl-{uuid.uuid4().hex}", timeout_ms=2000
            )
        )
        limits = [Limit(1000, 60)]
        held = [limiter._connections.acquire() for _ in range(3)]
        for conn in held:  # three open connections, idle in the stack
            limiter._connections.release(conn)
        assert limiter.take("r", "k", limits).allowed
        accepted = proxy.accepted
        proxy.set_mode("refuse")  # every open connection reset, as a restart does
        proxy.set_mode("pass")
        for _ in range(6):
            assert limiter.take("r", "k", limits).allowed
        assert limiter.breaker.consecutive_failures == 0
        assert proxy.accepted == accepted + 1  # one reconnect, reused after
        limiter.close()
