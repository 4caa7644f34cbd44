"""RedisLimiter against the real Redis: same decisions as LocalLimiter, exact across nodes,
bounded latency and a working circuit breaker when Redis is down or slow.

Every test uses its own key prefix (a uuid) and deletes its keys; nothing flushes the DB.
Redis failures are played by ``tests.support.redis_proxy.RedisProxy`` between client and Redis.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from edge_plugins.ratelimit.breaker import BreakerState
from edge_plugins.ratelimit.errors import LimitConfigError, StoreUnavailable
from edge_plugins.ratelimit.limits import Algorithm, Limit
from edge_plugins.ratelimit.local_store import LocalLimiter
from edge_plugins.ratelimit.redis_store import (
    LUA_TAKE,
    RedisLimiter,
    RedisSettings,
    key_part,
    packed_command,
    redis_limiter_for,
)
from tests.support.redis_proxy import RedisProxy
from tests.support.services import REDIS_TEST_URL, closed_port, redis_unavailable, require

pytestmark = pytest.mark.redis

# Generous for correctness tests on a loaded machine; the failure tests use 50 ms.
SLOW_OK_MS = 2000
# Redis TIME and time.time() read the same host clock, apart by one call's latency.
CLOCK_TOLERANCE = 0.05


@pytest.fixture(autouse=True)
def _redis() -> None:
    require(redis_unavailable())


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"test-rl-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def make(
    prefix: str, url: str = REDIS_TEST_URL, *, observe_latency=None, **kwargs: object
) -> RedisLimiter:
    options: dict = {"timeout_ms": SLOW_OK_MS, **kwargs}
    return RedisLimiter(
        RedisSettings(url=url, key_prefix=prefix, **options), observe_latency=observe_latency
    )


@pytest.fixture
def limiter(prefix: str) -> Iterator[RedisLimiter]:
    limiter = make(prefix)
    yield limiter
    limiter.close()


def assert_same(redis_outcome, local_outcome) -> None:
    assert redis_outcome.allowed == local_outcome.allowed
    for (r_limit, r), (l_limit, loc) in zip(
        redis_outcome.decisions, local_outcome.decisions, strict=True
    ):
        assert r_limit == l_limit
        assert (r.allowed, r.limit, r.remaining) == (loc.allowed, loc.limit, loc.remaining)
        assert r.reset_after == pytest.approx(loc.reset_after, abs=CLOCK_TOLERANCE)
        if loc.retry_after is None:
            assert r.retry_after is None
        else:
            assert r.retry_after == pytest.approx(loc.retry_after, abs=CLOCK_TOLERANCE)


# -- same decisions as the local store ------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "limits"),
    [
        ("sliding_window", [Limit(10, 60)]),
        ("gcra", [Limit(10, 60, burst=4)]),
        ("gcra", [Limit(7, 3600)]),
        ("sliding_window", [Limit(4, 1), Limit(9, 60), Limit(50, 3600)]),
        ("gcra", [Limit(4, 1, burst=3), Limit(9, 60)]),
    ],
)
def test_same_decisions_as_the_local_limiter(
    limiter: RedisLimiter, algorithm: str, limits: list[Limit]
) -> None:
    local = LocalLimiter()
    smallest = min(limit.capacity if algorithm == "gcra" else limit.limit for limit in limits)
    costs = [1, 2, 1, 3, 1, 1, 2, 1, 1, 4, 1, 1, 1, 2, 1]
    admitted = 0
    # The local clock counts the same elapsed time from a small origin: at epoch-sized
    # floats (1.7e9 s) the local GCRA's rounding slack is below one ulp.
    origin = time.time() - 1000.0
    for cost in (min(c, smallest) for c in costs):
        now = time.time() - origin
        got = limiter.take("route", "client", limits, algorithm=algorithm, cost=cost)
        want = local.take("route", "client", limits, algorithm=algorithm, cost=cost, now=now)
        assert_same(got, want)
        admitted += got.allowed
    assert 0 < admitted < len(costs), "the sequence both admits and rejects"


def test_sliding_window_waits_are_honest(limiter: RedisLimiter) -> None:
    limit = Limit(3, 0.5)
    for remaining in (2, 1, 0):
        outcome = limiter.take("r", "k", [limit])
        assert outcome.allowed and outcome.decisions[0][1].remaining == remaining
    rejected = limiter.take("r", "k", [limit]).decisions[0][1]
    assert not rejected.allowed and rejected.remaining == 0
    assert 0.3 < rejected.retry_after <= 0.5
    time.sleep(rejected.retry_after)
    assert limiter.take("r", "k", [limit]).allowed


def test_gcra_burst_then_steady_rate_with_honest_waits(limiter: RedisLimiter) -> None:
    limit = Limit(5, 1, burst=2)  # T = 200 ms
    first = limiter.take("r", "k", [limit], algorithm="gcra").decisions[0][1]
    assert first.allowed and first.limit == 2 and first.remaining == 1
    assert first.reset_after == pytest.approx(0.2, abs=0.01)
    assert limiter.take("r", "k", [limit], algorithm="gcra").allowed
    rejected = limiter.take("r", "k", [limit], algorithm="gcra").decisions[0][1]
    assert not rejected.allowed and rejected.remaining == 0
    assert rejected.retry_after == pytest.approx(0.2, abs=0.02)
    assert rejected.reset_after == pytest.approx(0.4, abs=0.02)
    time.sleep(rejected.retry_after)
    again = limiter.take("r", "k", [limit], algorithm="gcra").decisions[0][1]
    assert again.allowed and again.remaining == 0


def test_several_limits_are_all_or_nothing(limiter: RedisLimiter) -> None:
    per_second, per_minute = Limit.per("second", 2), Limit.per("minute", 3)
    limits = [per_second, per_minute]
    assert limiter.take("r", "k", limits).allowed
    assert limiter.take("r", "k", limits).allowed
    outcome = limiter.take("r", "k", limits)
    assert not outcome.allowed
    (_, second), (_, minute) = outcome.decisions
    assert not second.allowed and 0.5 < second.retry_after <= 1.0
    assert minute.allowed and minute.remaining == 0, "peeked, not consumed"
    assert outcome.most_restrictive == (per_second, second)
    time.sleep(second.retry_after)
    assert limiter.take("r", "k", limits).allowed, "the minute unit was not used up"
    outcome = limiter.take("r", "k", limits)
    assert not outcome.allowed and outcome.most_restrictive[0] == per_minute
    assert 58.0 < outcome.most_restrictive[1].retry_after <= 60.0
    # Nothing consumed by the rejected requests: 3 entries in the minute log.
    minute_key = limiter.keys("r", "k", limits)[1]
    assert limiter.client.zcard(minute_key) == 3


def test_costs(limiter: RedisLimiter) -> None:
    limit = Limit(10, 60, cost_default=3)
    assert limiter.take("r", "k", [limit]).decisions[0][1].remaining == 7
    assert limiter.take("r", "k", [limit], cost=6).decisions[0][1].remaining == 1
    rejected = limiter.take("r", "k", [limit], cost=2).decisions[0][1]
    assert not rejected.allowed and rejected.remaining == 1
    assert limiter.take("r", "k", [limit], cost=1).decisions[0][1].remaining == 0
    # GCRA: a cost up to the burst fits even where the sliding window would refuse it.
    wide = Limit(2, 60, burst=4)
    assert limiter.take("r", "x", [wide], algorithm="gcra", cost=4).allowed
    with pytest.raises(LimitConfigError):
        limiter.take("r", "x", [wide], cost=4)


def test_config_errors_are_raised_before_touching_redis(prefix: str) -> None:
    down = make(prefix, url=f"redis://127.0.0.1:{closed_port()}/0", timeout_ms=50)
    with pytest.raises(LimitConfigError):
        down.take("r", "k", [])
    with pytest.raises(LimitConfigError):
        down.take("r", "k", [Limit(5, 60)], cost=6)
    with pytest.raises(ValueError):
        down.take("r", "k", [Limit(5, 60)], algorithm="fixed_window")
    assert down.breaker.consecutive_failures == 0
    with pytest.raises(StoreUnavailable) as raised:
        down.take("r", "k", [Limit(5, 60)])
    assert raised.value.reason == "connection"


# -- keys ------------------------------------------------------------------------------------


def test_scopes_keys_and_algorithms_do_not_share_counters(limiter: RedisLimiter) -> None:
    limit = Limit.per("minute", 2)
    for _ in range(2):
        assert limiter.take("route-login", "1.2.3.4", [limit]).allowed
    assert not limiter.take("route-login", "1.2.3.4", [limit]).allowed
    assert limiter.take("route-register", "1.2.3.4", [limit]).allowed
    assert limiter.take("route-login", "5.6.7.8", [limit]).allowed
    assert limiter.take("route-login", "1.2.3.4", [limit], algorithm="gcra").allowed
    assert limiter.take("route-login", "1.2.3.4", [Limit.per("minute", 3)]).allowed, (
        "a changed limit starts fresh"
    )
    # ':' cannot shift a boundary between scope and key.
    assert limiter.take("a:b", "c", [Limit(1, 60)]).allowed
    assert limiter.take("a", "b:c", [Limit(1, 60)]).allowed


def test_key_layout(limiter: RedisLimiter) -> None:
    prefix = limiter.settings.key_prefix
    assert limiter.keys("route-1", "203.0.113.9", [Limit(5, 60), Limit(3, 0.5)]) == [
        f"{prefix}:sliding_window:route-1:5:60s:-:203.0.113.9",
        f"{prefix}:sliding_window:route-1:3:500000us:-:203.0.113.9",
    ]
    assert limiter.keys("route-1", "u", [Limit(5, 60)], algorithm=Algorithm.GCRA) == [
        f"{prefix}:gcra:route-1:5:60s:5:u"
    ]
    assert limiter.keys("route-1", "u", [Limit(5, 60, burst=2)], algorithm="gcra") == [
        f"{prefix}:gcra:route-1:5:60s:2:u"
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        "::1",
        "a:b",
        "x" * 65,
        "x" * 100_000,
        "",
        "{hashtag}",
        "ünïcode",
        "a b",
        "a\r\nPING",
        "\udcff",
        "#" + "0" * 32,
    ],
)
def test_hostile_client_keys_are_hashed_and_bounded(limiter: RedisLimiter, hostile: str) -> None:
    part = key_part(hostile)
    assert part.startswith("#") and len(part) == 33
    [key] = limiter.keys("route", hostile, [Limit(1, 60)])
    assert len(key.split(":")) == len(limiter.keys("route", "plain", [Limit(1, 60)])[0].split(":"))
    assert len(key) < 200
    assert limiter.take("route", hostile, [Limit(1, 60)]).allowed
    assert not limiter.take("route", hostile, [Limit(1, 60)]).allowed


def test_a_hashed_key_cannot_be_forged_by_sending_its_digest(limiter: RedisLimiter) -> None:
    victim = "2001:db8::1"
    forged = key_part(victim)  # what an attacker can compute
    assert key_part(forged) != forged
    assert limiter.take("route", victim, [Limit(1, 60)]).allowed
    assert limiter.take("route", forged, [Limit(1, 60)]).allowed, "own counter, not victim's"
    assert key_part("1.2.3.4") == "1.2.3.4" and key_part("user@example.com/x+y=") == (
        "user@example.com/x+y="
    )


def test_idle_keys_expire(limiter: RedisLimiter) -> None:
    limiter.take("r", "k", [Limit(5, 60)])
    limiter.take("r", "k", [Limit(10, 60, burst=2)], algorithm="gcra")
    [sliding] = limiter.keys("r", "k", [Limit(5, 60)])
    [gcra] = limiter.keys("r", "k", [Limit(10, 60, burst=2)], algorithm="gcra")
    assert 59_000 < limiter.client.pttl(sliding) <= 60_000
    assert 5_000 < limiter.client.pttl(gcra) <= 6_001  # TAT - now = one T = 6 s


# -- one script, sent once -------------------------------------------------------------------


def test_decisions_use_evalsha_of_a_script_loaded_once(
    limiter: RedisLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What goes on the wire, whichever client layer packs it: every command reaches the
    # socket through send_packed_command, as RESP (an array of bulk strings).
    calls: Counter[str] = Counter()
    send_packed_command = redis.connection.AbstractConnection.send_packed_command

    def spy(conn: Any, command: Any, *args: Any, **kwargs: Any) -> None:
        words = b"".join(command).split(b"\r\n")[2::2]  # *N, then $len and each word
        name = words[0].decode().upper()
        calls[f"{name} {words[1].decode().upper()}" if name == "SCRIPT" else name] += 1
        send_packed_command(conn, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)
    for _ in range(5):
        limiter.take("r", "k", [Limit(10, 60)])
    assert calls["EVALSHA"] == 5 and calls["EVAL"] == 0 and calls["SCRIPT LOAD"] <= 1
    other = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        assert other.script_exists(limiter.script_sha) == [True]
    finally:
        other.close()
    # NOSCRIPT (after a Redis restart or SCRIPT FLUSH) is recovered transparently. We may
    # not flush the shared Redis, so point the script at an unknown sha instead.
    real_sha = limiter.script_sha
    limiter._script.sha = "0" * 40
    assert limiter.take("r", "k", [Limit(10, 60)]).allowed
    assert limiter.script_sha == real_sha and calls["SCRIPT LOAD"] >= 1
    assert "redis.call('TIME')" in LUA_TAKE and "replicate_commands" in LUA_TAKE


def test_redis_error_reply_is_a_store_failure(limiter: RedisLimiter) -> None:
    [key] = limiter.keys("r", "k", [Limit(5, 60)])
    limiter.client.set(key, "not a sorted set")
    with pytest.raises(StoreUnavailable) as raised:
        limiter.take("r", "k", [Limit(5, 60)])
    assert raised.value.reason == "error" and "WRONGTYPE" in str(raised.value)
    assert limiter.breaker.consecutive_failures == 1


def test_a_reply_that_is_not_the_scripts_table_is_a_store_failure(
    limiter: RedisLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer that is not the script's table of integers is never indexed: it is a
    store failure, which on_store_failure decides, not a bug that fails open."""
    # A loaded script that answers a status, where the limiter expects the table.
    monkeypatch.setattr(limiter._script, "sha", limiter.client.script_load("return 'OK'"))
    with pytest.raises(StoreUnavailable) as raised:
        limiter.take("r", "k", [Limit(5, 60)])
    assert raised.value.reason == "error" and "bytes" in str(raised.value)


# -- settings, registry, metrics hook --------------------------------------------------------


def test_settings_are_hashable_and_hide_the_password() -> None:
    a = RedisSettings(host="redis.internal", password="s3cret")
    assert a == RedisSettings(host="redis.internal", password="s3cret")
    assert hash(a) == hash(RedisSettings(host="redis.internal", password="s3cret"))
    assert "s3cret" not in repr(a)
    assert RedisSettings().timeout_ms == 50 and RedisSettings().key_prefix == "edge-rl"
    with pytest.raises(LimitConfigError):
        RedisSettings(timeout_ms=0)


def test_one_limiter_per_settings_in_the_process(prefix: str) -> None:
    settings = RedisSettings(url=REDIS_TEST_URL, key_prefix=prefix)
    seen: list[float] = []
    first = redis_limiter_for(settings)
    assert (
        redis_limiter_for(
            RedisSettings(url=REDIS_TEST_URL, key_prefix=prefix), observe_latency=seen.append
        )
        is first
    )
    assert first.observe_latency is not None
    other = redis_limiter_for(RedisSettings(url=REDIS_TEST_URL, key_prefix=prefix + "-2"))
    assert other is not first and other.breaker is not first.breaker


def test_observe_latency_sees_every_round_trip_and_cannot_break_a_decision(prefix: str) -> None:
    seen: list[float] = []
    limiter = make(prefix, observe_latency=seen.append)
    limiter.take("r", "k", [Limit(5, 60)])
    assert len(seen) == 1 and 0 < seen[0] < 1

    def broken(seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    limiter.observe_latency = broken
    assert limiter.take("r", "k", [Limit(5, 60)]).allowed
    down = make(
        prefix,
        url=f"redis://127.0.0.1:{closed_port()}/0",
        timeout_ms=50,
        observe_latency=seen.append,
    )
    with pytest.raises(StoreUnavailable):
        down.take("r", "k", [Limit(5, 60)])
    assert len(seen) == 2, "failed round trips are observed too"
    limiter.close()


# -- two gateway nodes, one counter ----------------------------------------------------------


def hammer(
    nodes: list[RedisLimiter],
    limits: list[Limit],
    algorithm: str,
    *,
    clients: int = 16,
    seconds: float = 2.0,
) -> tuple[int, int, float]:
    """``clients`` threads spread over ``nodes``, all on ONE key; (admitted, total, elapsed)."""
    barrier = threading.Barrier(clients)
    results: list[tuple[int, int]] = []
    lock = threading.Lock()
    started: list[float] = []

    def client(index: int) -> None:
        node = nodes[index % len(nodes)]
        barrier.wait()
        if index == 0:
            started.append(time.monotonic())
        deadline = time.monotonic() + seconds
        admitted = total = 0
        while time.monotonic() < deadline:
            admitted += node.take("login", "203.0.113.9", limits, algorithm=algorithm).allowed
            total += 1
        with lock:
            results.append((admitted, total))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started[0]
    return sum(a for a, _ in results), sum(t for _, t in results), elapsed


def hammer_two_nodes(prefix: str, limit: Limit, algorithm: str) -> tuple[int, int, float]:
    """:func:`hammer` over two nodes: two limiters with their own settings objects, pools and
    breakers, on one Redis key."""
    nodes = [make(prefix), make(prefix)]
    assert nodes[0].client.connection_pool is not nodes[1].client.connection_pool
    try:
        return hammer(nodes, [limit], algorithm)
    finally:
        for node in nodes:
            node.close()


def test_two_nodes_sixteen_clients_sliding_window_admit_exactly_the_limit(prefix: str) -> None:
    limit = Limit(50, 10)
    admitted, total, elapsed = hammer_two_nodes(prefix, limit, "sliding_window")
    print(
        f"\nsliding_window, 2 nodes x 8 clients on one key for {elapsed:.1f} s: "
        f"admitted {admitted}/{limit.limit} of {total} requests"
    )
    assert total > 4 * limit.limit, "the key was really hammered"
    assert admitted == limit.limit


def test_two_nodes_sixteen_clients_gcra_admit_exactly_the_burst(prefix: str) -> None:
    """Concurrency, not the rate: with an emission interval (T) far longer than the run, no
    interval passes while the clients hammer, so exactly the burst is admitted whatever the
    machine's load. How the allowance refills per T: the honest-waits test above, the
    differential test against the local limiter, and test_gcra.py on an injected clock."""
    limit = Limit(10, 3600, burst=10)  # T = 360 s
    admitted, total, elapsed = hammer_two_nodes(prefix, limit, "gcra")
    print(
        f"\ngcra, 2 nodes x 8 clients on one key for {elapsed:.2f} s: admitted {admitted} "
        f"of {total}; burst {limit.capacity}"
    )
    assert total > 4 * limit.capacity, "the key was really hammered"
    assert admitted == limit.capacity


# -- Redis down, black-holed, slow -----------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[RedisProxy]:
    with RedisProxy(6379) as proxy:
        yield proxy


def timed_take(limiter: RedisLimiter) -> tuple[float, str]:
    """(seconds, "allowed"/"rejected"/failure reason) of one take."""
    started = time.perf_counter()
    try:
        outcome = limiter.take("r", "k", [Limit(1000, 60)])
        result = "allowed" if outcome.allowed else "rejected"
    except StoreUnavailable as exc:
        result = exc.reason
    return time.perf_counter() - started, result


# Generous: only a take with no timeout at all (a hang) gets this far, however loaded the
# machine is. What a take did is asserted by its outcome, the timeout its socket was given and
# the connections it opened, never by how long it took.
TAKE_HANG_GUARD_SECONDS = 30.0


def guarded_take(limiter: RedisLimiter) -> str:
    """ "allowed"/"rejected"/the failure reason of one take, which must not hang."""
    outcome: list[str] = []

    def take() -> None:
        outcome.append(timed_take(limiter)[1])

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(TAKE_HANG_GUARD_SECONDS)
    assert outcome, "the take hung: its socket had no timeout"
    return outcome[0]


def socket_timeouts(limiter: RedisLimiter) -> tuple[object, object]:
    """The (read/write, connect) timeouts every connection of ``limiter`` is made with."""
    kwargs = limiter.client.connection_pool.connection_kwargs
    return kwargs["socket_timeout"], kwargs["socket_connect_timeout"]


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The socket timeout of every connection attempt redis-py makes (one call per attempt:
    its ``connect()`` retries this under its Retry policy; on a connection that already has
    a socket the call returns at once and is no attempt)."""
    attempts: list[object] = []
    real_attempt = redis.connection.AbstractConnection.connect_check_health

    def recording_attempt(self: Any, *args: Any, **kwargs: Any) -> None:
        if self._sock is None:
            attempts.append(self.socket_timeout)
        real_attempt(self, *args, **kwargs)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "connect_check_health", recording_attempt
    )
    return attempts


def test_black_holed_redis_times_out_then_the_breaker_fails_fast_and_recovers(
    prefix: str, proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = make(
        prefix, url=proxy.url(15), timeout_ms=50, breaker_threshold=3, breaker_reset_seconds=0.5
    )
    assert socket_timeouts(limiter) == (0.05, 0.05)
    assert guarded_take(limiter) == "allowed"
    proxy.set_mode("blackhole")
    for _ in range(3):
        assert guarded_take(limiter) == "timeout"  # the socket's timeout ended it
    assert limiter.breaker_state is BreakerState.OPEN
    opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
    assert len(opened) == 1 and opened[0].levelname == "WARNING", "the open is said once"
    proxy.reset_counters()
    for _ in range(50):
        assert guarded_take(limiter) == "breaker_open"
    assert proxy.accepted == 0 and proxy.client_bytes == 0, "the open breaker sent nothing"
    # Still black-holed after reset_timeout: the single probe fails and reopens it.
    time.sleep(0.55)
    assert guarded_take(limiter) == "timeout"
    assert limiter.breaker_state is BreakerState.OPEN
    assert guarded_take(limiter) == "breaker_open"
    # Redis is back: after reset_timeout the probe succeeds and closes the breaker.
    proxy.set_mode("pass")
    time.sleep(0.55)
    assert guarded_take(limiter) == "allowed"
    assert limiter.breaker_state is BreakerState.CLOSED
    limiter.close()


def test_refused_connections_fail_fast_and_recover(
    prefix: str, proxy: RedisProxy, connection_attempts: list[object]
) -> None:
    limiter = make(
        prefix, url=proxy.url(15), timeout_ms=50, breaker_threshold=2, breaker_reset_seconds=0.3
    )
    assert guarded_take(limiter) == "allowed"
    proxy.set_mode("refuse")
    connection_attempts.clear()
    assert [guarded_take(limiter) for _ in range(2)] == ["connection", "connection"]
    # One attempt per take (no retry), each with the configured connect timeout.
    assert connection_attempts == [0.05, 0.05]
    # Then the breaker answers without touching the network at all.
    assert [guarded_take(limiter) for _ in range(3)] == ["breaker_open"] * 3
    assert connection_attempts == [0.05, 0.05]
    proxy.set_mode("pass")
    time.sleep(0.35)
    assert guarded_take(limiter) == "allowed"
    assert limiter.breaker_state is BreakerState.CLOSED
    limiter.close()


def test_slow_redis_within_the_timeout_works_beyond_it_times_out(
    prefix: str, proxy: RedisProxy
) -> None:
    # 20 ms against a 500 ms timeout, then 1.5 s: far from the timeout on either side, so a
    # loaded machine does not move an answer across it.
    limiter = make(
        prefix, url=proxy.url(15), timeout_ms=500, breaker_threshold=3, breaker_reset_seconds=0.5
    )
    assert socket_timeouts(limiter) == (0.5, 0.5)
    proxy.set_mode("delay", delay_ms=20)
    assert [guarded_take(limiter) for _ in range(3)] == ["allowed"] * 3
    assert limiter.breaker_state is BreakerState.CLOSED
    proxy.set_mode("delay", delay_ms=1500)
    assert guarded_take(limiter) == "timeout"
    limiter.close()


def test_redis_stopped_mid_run_costs_bounded_latency_and_recovers(
    prefix: str, proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """16 clients keep deciding while Redis goes away for 1 s and comes back."""
    reset, timeout = 0.3, 0.2
    # A timeout a healthy Redis never misses here, even with 16 Python threads and the proxy
    # sharing the GIL on a 2-core machine (at 50 ms it sometimes did, before and after the
    # outage, which is not what this test is about).
    limiter = make(
        prefix,
        url=proxy.url(15),
        timeout_ms=int(timeout * 1000),
        breaker_threshold=3,
        breaker_reset_seconds=reset,
    )
    stop = threading.Event()
    samples: list[tuple[float, float, str]] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            at = time.monotonic()
            seconds, result = timed_take(limiter)
            with lock:
                samples.append((at, seconds, result))
            time.sleep(0.002)

    # Daemons: a take that hangs (no socket timeout) must not keep the run alive after the
    # hang guard below has failed the test.
    threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    proxy.set_mode("blackhole")
    down_at = time.monotonic()
    time.sleep(0.5)
    proxy.set_mode("refuse")
    time.sleep(0.5)
    proxy.set_mode("pass")
    up_at = time.monotonic()
    time.sleep(2 * reset + 0.3)
    stop.set()
    for thread in threads:
        thread.join(TAKE_HANG_GUARD_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a take hung"
    limiter.close()

    counts = Counter(result for _, _, result in samples)
    # The outage's failures: calls started from one timeout before Redis went away until it
    # was back.
    network_failures = sum(
        1
        for at, _, result in samples
        if result in ("timeout", "connection") and down_at - timeout <= at < up_at
    )
    print(f"\nRedis down {up_at - down_at:.1f} s under 16 clients: {dict(counts)}")
    # What bounds a take's latency is its socket's timeout (no retry), not asserted as a time.
    assert socket_timeouts(limiter) == (timeout, timeout)
    assert counts["breaker_open"] > 10 * network_failures > 0
    # Failures that touched the network: per client, the call in flight when it broke and
    # one started before the breaker had seen its threshold; after that only probes, each
    # of which reopens the breaker once (the breaker's own tests pin one probe per reset
    # interval under a fake clock). A breaker closed by an answer while Redis was down would
    # let all 16 clients through again, far above this.
    opens = sum("circuit breaker open" in r.getMessage() for r in caplog.records)
    assert opens >= 1
    assert network_failures <= 2 * 16 + opens
    # Once Redis is back (and a probe has closed the breaker), Redis decides every request.
    after = [result for at, _, result in samples if at > up_at + reset + 0.1]
    assert after and set(after) <= {"allowed", "rejected"}
    assert limiter.breaker_state is BreakerState.CLOSED


def test_a_packed_command_is_the_bytes_redis_py_would_send(limiter: RedisLimiter) -> None:
    args = ("EVALSHA", "ab" * 20, 2, "edge-rl:r:k", "edge-rl:r:#0f", "gcra", 10, -1, "é")
    conn = limiter.client.connection_pool.make_connection()
    assert packed_command(*args) == b"".join(conn.pack_command(*args))
    for wrong in (1.5, True, b"bytes"):
        with pytest.raises(TypeError):
            packed_command("EVALSHA", wrong)
