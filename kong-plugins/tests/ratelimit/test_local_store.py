"""Process-wide registry: scoped counters, all-or-nothing over several limits, bounded."""

from __future__ import annotations

import threading

import pytest

from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.limits import Algorithm, Limit
from edge_plugins.ratelimit.local_store import LocalLimiter, local_limiter

MINUTE_5 = Limit.per("minute", 5)


def test_one_registry_per_process() -> None:
    assert local_limiter() is local_limiter()
    assert isinstance(local_limiter(), LocalLimiter)


def test_scopes_and_keys_do_not_share_counters() -> None:
    registry = LocalLimiter()
    for _ in range(5):
        assert registry.take("route-login", "1.2.3.4", [MINUTE_5], now=0.0).allowed
    assert not registry.take("route-login", "1.2.3.4", [MINUTE_5], now=1.0).allowed
    assert registry.take("route-register", "1.2.3.4", [MINUTE_5], now=1.0).allowed
    assert registry.take("route-login", "5.6.7.8", [MINUTE_5], now=1.0).allowed
    assert registry.take("route-login", "1.2.3.4", [MINUTE_5], algorithm="gcra", now=1.0).allowed, (
        "each algorithm keeps its own state"
    )
    assert len(registry) == 3


def test_several_limits_are_all_or_nothing() -> None:
    registry = LocalLimiter()
    per_second, per_minute = Limit.per("second", 2), Limit.per("minute", 3)
    limits = [per_second, per_minute]
    assert registry.take("r", "k", limits, now=0.0).allowed
    assert registry.take("r", "k", limits, now=0.0).allowed
    outcome = registry.take("r", "k", limits, now=0.5)
    assert not outcome.allowed
    (_, second), (_, minute) = outcome.decisions
    assert not second.allowed and second.retry_after == 0.5
    assert minute.allowed and minute.remaining == 0, "peeked, not consumed"
    assert outcome.most_restrictive == (per_second, second)
    assert registry.take("r", "k", limits, now=1.0).allowed, "the minute unit was not used up"
    outcome = registry.take("r", "k", limits, now=2.0)
    assert not outcome.allowed and outcome.most_restrictive[0] == per_minute
    assert outcome.most_restrictive[1].retry_after == 58.0  # the units of t=0 leave at 60


def test_gcra_through_the_registry_uses_burst() -> None:
    registry = LocalLimiter()
    limit = Limit(10, 60, burst=2)
    outcomes = [
        registry.take("r", "k", [limit], algorithm=Algorithm.GCRA, now=0.0) for _ in range(3)
    ]
    assert [o.allowed for o in outcomes] == [True, True, False]
    assert outcomes[2].decisions[0][1].retry_after == 6.0
    # A cost up to the burst fits under GCRA even though the sliding window would refuse it.
    wide = Limit(2, 60, burst=4)
    assert registry.take("r", "x", [wide], algorithm="gcra", cost=4, now=0.0).allowed
    with pytest.raises(LimitConfigError):
        registry.take("r", "x", [wide], cost=4, now=0.0)


def test_validation_and_bounds() -> None:
    registry = LocalLimiter(max_limiters=2, max_keys=2)
    with pytest.raises(LimitConfigError):
        registry.take("r", "k", [], now=0.0)
    with pytest.raises(ValueError):
        registry.take("r", "k", [MINUTE_5], algorithm="fixed_window", now=0.0)
    with pytest.raises(LimitConfigError):
        registry.take("r", "k", [MINUTE_5], cost=6, now=0.0)
    for scope in ("a", "b", "c"):
        registry.take(scope, "k", [MINUTE_5], now=0.0)
    assert len(registry) == 2, "least recently used limiters evicted"
    registry.clear()
    assert len(registry) == 0
    with pytest.raises(ValueError):
        LocalLimiter(max_keys=0)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_threads_hammering_one_key_through_the_registry(algorithm: Algorithm) -> None:
    registry = LocalLimiter()
    limits = [Limit(30, 3600), Limit(1000, 86400)]
    admitted = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        admitted.append(
            sum(
                registry.take("r", "hot", limits, algorithm=algorithm, now=1.0).allowed
                for _ in range(100)
            )
        )

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 30
