"""Circuit breaker: every transition under a fake clock, and only one half-open probe."""

from __future__ import annotations

import threading

import pytest

from edge_plugins.ratelimit.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def opened(clock: FakeClock, threshold: int = 3, reset: float = 5.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, reset, clock=clock)
    for _ in range(threshold):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_state_values() -> None:
    assert [str(s) for s in BreakerState] == ["closed", "open", "half_open"]


def test_closed_allows_and_only_consecutive_failures_open_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    assert breaker.state is BreakerState.CLOSED
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()  # resets the count: never three in a row
        assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.consecutive_failures == 2 and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_open_refuses_until_reset_timeout(clock: FakeClock) -> None:
    breaker = opened(clock)
    assert not breaker.allow()
    clock.now += 4.999
    assert not breaker.allow()
    assert breaker.state is BreakerState.OPEN, "reading the state starts no probe"
    clock.now += 0.001
    assert breaker.allow(), "the first caller after reset_timeout is the probe"
    assert breaker.state is BreakerState.HALF_OPEN


def test_failures_while_open_do_not_extend_it(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 4.0
    breaker.record_failure()  # a call that started before the breaker opened
    clock.now += 1.0
    assert breaker.allow()


def test_only_one_probe_at_a_time(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    assert not any(breaker.allow() for _ in range(100))
    assert breaker.state is BreakerState.HALF_OPEN


def test_successful_probe_closes(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    # A fresh count: threshold failures again to reopen.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_another_reset_timeout(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 0.05  # the probe times out
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.99
    assert not breaker.allow()
    clock.now += 0.01
    assert breaker.allow() and breaker.state is BreakerState.HALF_OPEN


def test_a_lost_probe_does_not_wedge_it_half_open(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()  # this probe never reports back
    clock.now += 4.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow(), "a new probe after another reset_timeout"
    assert not breaker.allow()


def test_threshold_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()


def test_validation() -> None:
    for threshold, reset in ((0, 1.0), (True, 1.0), (1, 0), (1, -1.0)):
        with pytest.raises(ValueError):
            CircuitBreaker(threshold, reset)
    assert "closed" in repr(CircuitBreaker())


def test_concurrent_callers_get_exactly_one_probe(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    barrier = threading.Barrier(32)
    allowed: list[bool] = []
    lock = threading.Lock()

    def caller() -> None:
        barrier.wait()
        result = breaker.allow()
        with lock:
            allowed.append(result)

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1 and len(allowed) == 32
