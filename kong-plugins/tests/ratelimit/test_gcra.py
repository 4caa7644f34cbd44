"""GCRA: burst at once, then exactly the steady rate; honest waits; thread-safe."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.gcra import Gcra
from edge_plugins.ratelimit.limits import Limit

QUARTER = 0.25


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[int, int, int], list[tuple[float, int]]]:
    limit = draw(st.integers(1, 10))
    window = draw(st.integers(1, 60))
    burst = draw(st.integers(1, 2 * limit))
    steps = draw(
        st.lists(st.tuples(st.integers(0, 16), st.integers(1, burst)), min_size=1, max_size=80)
    )
    now, arrivals = 500.0, []
    for gap, cost in steps:
        now += gap * QUARTER
        arrivals.append((now, cost))
    return (limit, window, burst), arrivals


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_more_than_burst_plus_elapsed_over_rate(scenario) -> None:
    params, arrivals = scenario
    gcra = Gcra(*params)
    period = gcra.emission_interval
    admitted: list[tuple[float, int]] = []
    for now, cost in arrivals:
        decision = gcra.take("k", cost, now=now)
        assert decision.limit == gcra.burst
        assert 0 <= decision.remaining <= gcra.burst
        if decision.allowed:
            admitted.append((now, cost))
        else:
            wait = decision.retry_after
            assert wait is not None and wait > 0
            assert not gcra.peek("k", cost, now=now + wait - 1e-4).allowed  # > the 10 µs slack
            assert gcra.peek("k", cost, now=now + wait).allowed
    # In every interval [a, b]: admitted units <= burst + (b - a) / T.
    for i, (start, _) in enumerate(admitted):
        units = 0
        for end, cost in admitted[i:]:
            units += cost
            assert units <= gcra.burst + (end - start) / period + 1e-6


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), st.integers(1, 60), st.data())
def test_idle_key_admits_burst_then_exactly_the_steady_rate(limit, window, data) -> None:
    burst = data.draw(st.integers(1, 2 * limit))
    gcra = Gcra(limit, window, burst)
    period = window / limit
    now = 1000.0
    for i in range(burst):
        decision = gcra.take("k", now=now)
        assert decision.allowed and decision.remaining == burst - 1 - i
    rejected = gcra.take("k", now=now)
    assert not rejected.allowed and rejected.remaining == 0
    assert rejected.retry_after == pytest.approx(period)
    # From here on, exactly one unit per emission interval.
    for _ in range(20):
        decision = gcra.take("k", now=now + rejected.retry_after)
        assert decision.allowed and decision.remaining == 0
        now += rejected.retry_after
        rejected = gcra.take("k", now=now)
        assert not rejected.allowed
        assert rejected.retry_after == pytest.approx(period)


def test_login_five_per_minute_with_burst_two() -> None:
    gcra = Gcra(5, 60, burst=2)  # T = 12 s, two at once
    assert gcra.emission_interval == 12.0 and gcra.tolerance == 24.0
    first = gcra.take("ip", now=0.0)
    assert first.allowed and first.remaining == 1 and first.reset_after == 12.0
    second = gcra.take("ip", now=0.0)
    assert second.allowed and second.remaining == 0 and second.reset_after == 24.0
    third = gcra.take("ip", now=5.0)
    assert not third.allowed and third.retry_after == 7.0 and third.reset_after == 19.0
    assert gcra.take("ip", now=12.0).allowed
    assert gcra.take("other", now=12.0).allowed, "keys are independent"
    # Idle for reset_after: the full burst is back.
    assert gcra.take("ip", now=36.0).remaining == 1


def test_cost_and_validation() -> None:
    gcra = Gcra(10, 10, burst=4)  # T = 1 s
    assert gcra.take("k", 3, now=0.0).remaining == 1
    decision = gcra.take("k", 3, now=0.0)
    assert not decision.allowed and decision.retry_after == 2.0
    assert gcra.take("k", 3, now=2.0).allowed
    with pytest.raises(LimitConfigError):
        gcra.take("k", 5, now=10.0)
    with pytest.raises(LimitConfigError):
        Gcra(0, 10)
    with pytest.raises(ValueError):
        Gcra(1, 10, max_keys=0)
    assert Gcra(7, 60).burst == 7, "burst defaults to the limit"
    assert Gcra.for_limit(Limit(3, 30, cost_default=2)).take("k", now=0.0).remaining == 1


def test_state_is_one_tat_per_key_pruned_when_idle_and_bounded() -> None:
    gcra = Gcra(1, 10, max_keys=2)
    for key in "abc":
        gcra.take(key, now=0.0)
    assert len(gcra) == 2
    assert all(isinstance(tat, float) for tat in gcra._tats.values())
    for i in range(3):
        gcra.take("z", now=100.0 + 20 * i)
    assert list(gcra._tats) == ["z"]


def test_threads_hammering_one_key_never_exceed_the_burst() -> None:
    gcra = Gcra(100, 3600, burst=40)
    admitted = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        admitted.append(sum(gcra.take("hot", now=1.0).allowed for _ in range(200)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 40


def test_an_earlier_clock_reading_after_pruning_does_not_revive_a_fresh_key() -> None:
    gcra = Gcra(1, 10, burst=1)
    assert gcra.take("k", now=0.0).allowed
    # Another key's request at t=10 prunes "k" (its TAT has passed) ...
    assert gcra.take("other", now=10.0).allowed
    # ... and a thread that read t=9 before the lock is counted at t=10, not as a fresh key
    # at t=9 (which would be admitted 1 s early).
    late = gcra.take("k", now=9.0)
    assert late.allowed and late.reset_after == 10.0
    assert not gcra.take("k", now=9.5).allowed
    assert gcra.peek("k", now=20.0).allowed


@pytest.mark.parametrize("limit", [7, 9, 11, 60])
def test_full_burst_at_epoch_timestamps(limit: int) -> None:
    # time.time() is ~1.7e9: one ulp is 2.4e-7 s, far above a billionth of T.
    gcra = Gcra(limit, 60)
    now = 1_764_331_200.123456
    remaining = [gcra.take("k", now=now) for _ in range(limit + 1)]
    assert [d.allowed for d in remaining] == [True] * limit + [False]
    assert [d.remaining for d in remaining[:limit]] == list(range(limit - 1, -1, -1))
    later = now + 60 / limit
    assert gcra.take("k", now=later).allowed, "one emission interval later: one more"
