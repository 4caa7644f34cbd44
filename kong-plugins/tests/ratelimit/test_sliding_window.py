"""Sliding-window log: exact in every window, no false rejections, honest waits, thread-safe."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.limits import Limit
from edge_plugins.ratelimit.sliding_window import SlidingWindowLog

# Times on a quarter-second grid are exact in binary floating point, so the brute-force
# reference and the limiter agree on every boundary (a unit at t leaves at exactly t + W).
QUARTER = 0.25


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Limit, list[tuple[float, int]]]:
    limit = draw(st.integers(1, 6))
    window = draw(st.integers(1, 40)) * QUARTER
    steps = draw(
        st.lists(st.tuples(st.integers(0, 12), st.integers(1, limit)), min_size=1, max_size=60)
    )
    now, arrivals = 1000.0, []
    for gap, cost in steps:
        now += gap * QUARTER
        arrivals.append((now, cost))
    return Limit(limit, window), arrivals


def _used(admitted: list[tuple[float, int]], at: float, window: float) -> int:
    """Units admitted in the window ending at ``at``: stamps ``b`` with ``b + W > at``."""
    return sum(cost for stamp, cost in admitted if stamp <= at and stamp + window > at)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_over_limit_in_any_window_and_never_falsely_rejects(scenario) -> None:
    limit, arrivals = scenario
    window = limit.window_seconds
    store = SlidingWindowLog()
    admitted: list[tuple[float, int]] = []
    for now, cost in arrivals:
        used_before = _used(admitted, now, window)
        decision = store.take("k", limit, cost, now=now)
        assert decision.limit == limit.limit
        if decision.allowed:
            admitted.append((now, cost))
            assert decision.remaining == limit.limit - used_before - cost
            oldest = min(stamp for stamp, _ in admitted if stamp + window > now)
            assert decision.reset_after == oldest + window - now
        else:
            assert used_before + cost > limit.limit, "rejected although the window had room"
            assert decision.remaining == limit.limit - used_before
            wait = decision.retry_after
            assert wait is not None and wait > 0
            assert _used(admitted, now + wait, window) + cost <= limit.limit
            assert _used(admitted, now + wait - 1e-6, window) + cost > limit.limit
    # Brute force: every interval [a, a + W) starting at an admitted stamp holds <= limit.
    for start, _ in admitted:
        inside = sum(cost for stamp, cost in admitted if start <= stamp < start + window)
        assert inside <= limit.limit


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(0.0, 1.0))
def test_waiting_retry_after_succeeds_and_slightly_less_fails(scenario, jitter) -> None:
    limit, arrivals = scenario
    store = SlidingWindowLog()
    # Fill the key, then one more request must wait.
    now = arrivals[0][0] + jitter
    for _ in range(limit.limit):
        assert store.take("k", limit, 1, now=now).allowed
    for when, cost in arrivals:
        if when < now:
            continue
        decision = store.take("k", limit, cost, now=when)
        if decision.allowed:
            now = when
            continue
        wait = decision.retry_after
        assert wait is not None
        assert not store.peek("k", limit, cost, now=when + wait - 1e-6).allowed
        assert store.take("k", limit, cost, now=when + wait).allowed
        return


def test_login_five_per_minute() -> None:
    store = SlidingWindowLog()
    login = Limit.per("minute", 5)
    for i in range(5):
        decision = store.take("1.2.3.4", login, now=100.0 + i)
        assert decision.allowed and decision.remaining == 4 - i
        assert decision.reset_after == 60.0 - i
    sixth = store.take("1.2.3.4", login, now=120.0)
    assert not sixth.allowed and sixth.remaining == 0
    assert sixth.retry_after == 40.0 and sixth.reset_after == 40.0
    assert store.take("5.6.7.8", login, now=120.0).allowed, "keys are independent"
    # A fixed window would reset at 160 and admit 5 more; the log frees one unit per second.
    assert store.take("1.2.3.4", login, now=160.0).allowed
    assert not store.take("1.2.3.4", login, now=160.5).allowed
    assert store.take("1.2.3.4", login, now=161.0).allowed


def test_cost_waits_for_enough_units() -> None:
    store = SlidingWindowLog()
    limit = Limit(5, 10)
    assert store.take("k", limit, 2, now=0.0).allowed
    assert store.take("k", limit, 2, now=1.0).allowed
    assert store.take("k", limit, 1, now=2.0).allowed
    decision = store.take("k", limit, 4, now=3.0)
    # 4 units need the entries at 0 (2 units) and 1 (2 units) to leave: at t=11.
    assert not decision.allowed and decision.retry_after == 8.0 and decision.reset_after == 7.0
    assert store.take("k", limit, 4, now=11.0).allowed
    with pytest.raises(LimitConfigError):
        store.take("k", limit, 6, now=20.0)


def test_clock_read_before_the_lock_never_reorders_the_log() -> None:
    store = SlidingWindowLog()
    limit = Limit(2, 10)
    assert store.take("k", limit, now=5.0).allowed
    # A thread that read the clock earlier but took the lock later is counted at 5.0.
    assert store.take("k", limit, now=4.0).allowed
    assert not store.take("k", limit, now=14.9).allowed
    assert store.take("k", limit, now=15.0).allowed


def test_peek_into_the_future_changes_nothing() -> None:
    store = SlidingWindowLog()
    limit = Limit(1, 10)
    assert store.take("k", limit, now=0.0).allowed
    assert store.peek("k", limit, now=50.0).allowed
    assert not store.take("k", limit, now=5.0).allowed, "the unit of t=0 is still counted"


def test_memory_bounded_and_idle_keys_pruned() -> None:
    store = SlidingWindowLog(max_keys=3)
    limit = Limit(3, 10)
    for key in "abcde":
        store.take(key, limit, now=0.0)
    assert len(store) == 3, "least recently used keys evicted past max_keys"
    for _ in range(10):
        store.take("a", limit, now=1.0)
    assert len(store._logs["a"].entries) == 3, "a key never holds more than limit entries"
    for i in range(5):
        store.take("z", limit, now=100.0 + i)
    assert list(store._logs) == ["z"], "keys idle for a whole window are pruned"
    assert store.peek("new", limit, now=200.0).remaining == 2
    assert "new" not in store._logs, "peek stores nothing"
    with pytest.raises(ValueError):
        SlidingWindowLog(max_keys=0)


@pytest.mark.parametrize("cost", [1, 3])
def test_threads_hammering_one_key_never_exceed_the_limit(cost: int) -> None:
    store = SlidingWindowLog()
    limit = Limit(50, 3600)
    admitted = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        count = 0
        for _ in range(200):
            if store.take("hot", limit, cost, now=1.0).allowed:
                count += cost
        admitted.append(count)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == limit.limit - limit.limit % cost
