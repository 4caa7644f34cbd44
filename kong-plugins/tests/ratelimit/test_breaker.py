"""Circuit breaker: every transition under a fake clock, only one half-open probe, and
answers that count only for the state that admitted their call (permits)."""

from __future__ import annotations

import threading

import pytest

from edge_plugins.ratelimit.breaker import BreakerState, CircuitBreaker, Permit


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
        breaker.record_failure(admitted(breaker))
    assert breaker.state is BreakerState.OPEN
    return breaker


def admitted(breaker: CircuitBreaker) -> Permit:
    permit = breaker.allow()
    assert permit is not None, "the breaker refused a call it should admit"
    return permit


def test_state_values() -> None:
    assert [str(s) for s in BreakerState] == ["closed", "open", "half_open"]


def test_closed_allows_and_only_consecutive_failures_open_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    assert breaker.state is BreakerState.CLOSED
    for _ in range(10):
        assert not breaker.record_failure(admitted(breaker))
        assert not breaker.record_failure(admitted(breaker))
        breaker.record_success(admitted(breaker))  # resets the count: never three in a row
        assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(admitted(breaker))
    breaker.record_failure(admitted(breaker))
    assert breaker.consecutive_failures == 2 and breaker.state is BreakerState.CLOSED
    assert breaker.record_failure(admitted(breaker)), "the failure that opens it says so"
    assert breaker.state is BreakerState.OPEN


def test_open_refuses_until_reset_timeout(clock: FakeClock) -> None:
    breaker = opened(clock)
    assert breaker.allow() is None
    clock.now += 4.999
    assert breaker.allow() is None
    assert breaker.state is BreakerState.OPEN, "reading the state starts no probe"
    clock.now += 0.001
    assert breaker.allow() is not None, "the first caller after reset_timeout is the probe"
    assert breaker.state is BreakerState.HALF_OPEN


def test_failures_while_open_do_not_extend_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    started_closed = admitted(breaker)  # answers after the breaker opened
    for _ in range(3):
        breaker.record_failure(admitted(breaker))
    clock.now += 4.0
    assert not breaker.record_failure(started_closed)
    clock.now += 1.0
    assert breaker.allow() is not None


def test_a_stale_success_does_not_close_it(clock: FakeClock) -> None:
    # A call admitted while closed answers once the breaker is open, then once it is
    # half-open with a probe in flight: Redis answered it before it went down, which says
    # nothing about now. Counting it would send every caller to a dead Redis again.
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    late, later = admitted(breaker), admitted(breaker)
    for _ in range(3):
        breaker.record_failure(admitted(breaker))
    breaker.record_success(late)
    assert breaker.state is BreakerState.OPEN
    assert breaker.allow() is None
    clock.now += 5.0
    probe = admitted(breaker)
    breaker.record_success(later)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is None, "still one probe at a time"
    assert breaker.record_failure(probe), "the probe's own answer decides"
    assert breaker.state is BreakerState.OPEN


def test_a_stale_failure_does_not_reopen_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    late = admitted(breaker)
    for _ in range(3):
        breaker.record_failure(admitted(breaker))
    clock.now += 5.0
    probe = admitted(breaker)
    assert not breaker.record_failure(late), "a call from before the open, not the probe"
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED
    assert not breaker.record_failure(late)
    assert breaker.consecutive_failures == 0, "nor counts once the breaker closed again"


def test_only_one_probe_at_a_time(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow() is not None
    assert all(breaker.allow() is None for _ in range(100))
    assert breaker.state is BreakerState.HALF_OPEN


def test_successful_probe_closes(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    breaker.record_success(admitted(breaker))
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() is not None for _ in range(10))
    # A fresh count: threshold failures again to reopen.
    breaker.record_failure(admitted(breaker))
    breaker.record_failure(admitted(breaker))
    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_another_reset_timeout(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    probe = admitted(breaker)
    clock.now += 0.05  # the probe times out
    assert breaker.record_failure(probe)
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.99
    assert breaker.allow() is None
    clock.now += 0.01
    assert breaker.allow() is not None and breaker.state is BreakerState.HALF_OPEN


def test_a_lost_probe_does_not_wedge_it_half_open(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    lost = admitted(breaker)  # this probe does not report back in time
    clock.now += 4.0
    assert breaker.allow() is None
    clock.now += 1.0
    probe = admitted(breaker)  # a new probe after another reset_timeout
    assert breaker.allow() is None
    breaker.record_success(lost)  # the lost one answers at last: only the new one counts
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED


def test_threshold_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure(admitted(breaker))
    assert breaker.state is BreakerState.OPEN and breaker.allow() is None


def test_validation() -> None:
    for threshold, reset in ((0, 1.0), (True, 1.0), (1, 0), (1, -1.0)):
        with pytest.raises(ValueError):
            CircuitBreaker(threshold, reset)
    assert "closed" in repr(CircuitBreaker())


def test_concurrent_callers_get_exactly_one_probe(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    barrier = threading.Barrier(32)
    allowed: list[Permit | None] = []
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
    assert len(allowed) == 32 and allowed.count(None) == 31
