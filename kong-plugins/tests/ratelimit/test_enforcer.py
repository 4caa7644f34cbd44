"""The verdict for one request: policies, store-failure modes, shadow, headers, the body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from edge_plugins.ratelimit.config import RateLimitConfig
from edge_plugins.ratelimit.enforcer import Enforcer
from edge_plugins.ratelimit.errors import StoreUnavailable
from edge_plugins.ratelimit.limits import Limit, Outcome
from edge_plugins.ratelimit.local_store import LocalLimiter
from edge_plugins.responses import QUOTA_EXCEEDED_TYPE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DownRedis:
    """A RedisLimiter whose store is unreachable (the breaker is open)."""

    breaker_state = "open"

    def __init__(self) -> None:
        self.calls = 0

    def take(
        self,
        scope: str,
        key: str,
        limits: Sequence[Limit],
        *,
        algorithm: str = "sliding_window",
        cost: int | None = None,
    ) -> Outcome:
        self.calls += 1
        raise StoreUnavailable("breaker_open")


class LocalAsRedis:
    """A working shared store: the local registry behind the RedisLimiter interface."""

    breaker_state = "closed"

    def __init__(self, clock: Clock) -> None:
        self.local = LocalLimiter()
        self.clock = clock

    def take(
        self,
        scope: str,
        key: str,
        limits: Sequence[Limit],
        *,
        algorithm: str = "sliding_window",
        cost: int | None = None,
    ) -> Outcome:
        return self.local.take(scope, key, limits, algorithm=algorithm, cost=cost, now=self.clock())


def enforcer(clock: Clock, redis: Any = None, route: str = "login", **conf: Any) -> Enforcer:
    base: dict[str, Any] = {"limits": [{"limit": 5, "period": "minute"}], "route_id": route}
    if redis is not None:
        base.update(
            policy="redis", redis={"url": "redis://127.0.0.1:1/0", "breaker_reset_seconds": 4}
        )
    config = RateLimitConfig.from_kong({**base, **conf})
    return Enforcer(config, route_label=route, local=LocalLimiter(), redis=redis, clock=clock)


def decisions(route: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "edge_rate_limit_decisions_total", {"route": route, "outcome": outcome}
        )
        or 0.0
    )


def test_sixth_request_in_a_minute_is_rejected_with_headers_and_problem_body() -> None:
    clock = Clock()
    limiter = enforcer(clock, route="t-sixth")
    for expected_remaining in (4, 3, 2, 1, 0):
        verdict = limiter.decide("ip:1.2.3.4")
        assert verdict.admitted and verdict.outcome == "allowed"
        assert verdict.headers["RateLimit-Remaining"] == str(expected_remaining)
        assert verdict.headers["X-RateLimit-Limit-Minute"] == "5"
    clock.now += 10
    verdict = limiter.decide("ip:1.2.3.4")
    assert verdict.status == 429 and verdict.outcome == "rejected"
    assert verdict.headers["Retry-After"] == "50"
    assert verdict.headers["RateLimit"] == '"minute";r=0;t=50'
    assert verdict.headers["RateLimit-Policy"] == '"minute";q=5;w=60'
    assert verdict.body == {
        "type": QUOTA_EXCEEDED_TYPE,
        "title": "Too Many Requests",
        "status": 429,
        "detail": "API rate limit exceeded",
        "message": "API rate limit exceeded",
        "violated-policies": ["minute"],
    }
    assert limiter.decide("ip:5.6.7.8").admitted, "another client has its own counter"
    clock.now += 50
    assert limiter.decide("ip:1.2.3.4").admitted, "Retry-After was long enough"
    assert decisions("t-sixth", "rejected") == 1
    assert decisions("t-sixth", "allowed") == 7


def test_only_the_violated_policy_is_named_and_error_settings_apply() -> None:
    clock = Clock()
    limiter = enforcer(
        clock,
        limits=[{"limit": 100, "period": "minute"}, {"limit": 2, "window_seconds": 10}],
        error_code=403,
        error_message="slow down",
    )
    limiter.decide("k")
    limiter.decide("k")
    verdict = limiter.decide("k")
    assert verdict.status == 403
    assert verdict.body is not None
    assert verdict.body["violated-policies"] == ["10s"]
    assert (verdict.body["title"], verdict.body["detail"]) == ("Forbidden", "slow down")


def test_near_limit_counts_from_80_percent_used() -> None:
    clock = Clock()
    limiter = enforcer(clock, route="t-near")
    sample = {"route": "t-near"}
    for _ in range(3):
        limiter.decide("k")
    assert (REGISTRY.get_sample_value("edge_rate_limit_near_limit_total", sample) or 0) == 0
    limiter.decide("k")  # 4 of 5 used
    limiter.decide("k")  # 5 of 5 used
    assert REGISTRY.get_sample_value("edge_rate_limit_near_limit_total", sample) == 2


def test_shadow_never_rejects_and_shows_nothing() -> None:
    clock = Clock()
    limiter = enforcer(clock, route="t-shadow", shadow=True)
    verdicts = [limiter.decide("k") for _ in range(8)]
    assert all(v.admitted and v.headers == {} for v in verdicts)
    assert [v.outcome for v in verdicts].count("shadow_rejected") == 3
    assert decisions("t-shadow", "shadow_rejected") == 3


def test_hidden_headers_keep_retry_after_on_rejection() -> None:
    clock = Clock()
    limiter = enforcer(clock, hide_client_headers=True)
    for _ in range(5):
        assert limiter.decide("k").headers == {}
    assert limiter.decide("k").headers == {"Retry-After": "60"}


def test_ietf_or_kong_headers_only() -> None:
    clock = Clock()
    ietf = enforcer(clock, kong_headers=False).decide("k").headers
    assert set(ietf) == {"RateLimit", "RateLimit-Policy"}
    kong = enforcer(clock, ietf_headers=False).decide("k").headers
    assert set(kong) == {
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "X-RateLimit-Limit-Minute",
        "X-RateLimit-Remaining-Minute",
    }


def test_redis_policy_decides_in_the_shared_store() -> None:
    clock = Clock()
    shared = LocalAsRedis(clock)
    node_a = enforcer(clock, redis=shared, route="t-shared")
    node_b = enforcer(clock, redis=shared, route="t-shared")
    admitted = sum(node.decide("k").admitted for _ in range(5) for node in (node_a, node_b))
    assert admitted == 5, "two nodes, one counter"


@pytest.mark.parametrize(
    ("mode", "status", "outcome"),
    [
        ("open", 200, "store_failure_open"),
        ("closed", 503, "store_failure_closed"),
    ],
)
def test_store_failure_open_and_closed(mode: str, status: int, outcome: str) -> None:
    clock = Clock()
    down = DownRedis()
    limiter = enforcer(clock, redis=down, route=f"t-{mode}", on_store_failure=mode)
    verdicts = [limiter.decide("k") for _ in range(10)]
    assert {(v.status, v.outcome) for v in verdicts} == {(status, outcome)}
    if mode == "closed":
        assert verdicts[0].headers == {"Retry-After": "4"} and verdicts[0].body is None
    else:
        assert verdicts[0].headers == {}
    assert down.calls == 10
    assert decisions(f"t-{mode}", outcome) == 10


def test_store_failure_local_counts_per_node_share() -> None:
    clock = Clock()
    limiter = enforcer(
        clock,
        redis=DownRedis(),
        route="t-fallback",
        expected_nodes=2,
        limits=[{"limit": 6, "period": "minute"}],
    )
    verdicts = [limiter.decide("k") for _ in range(5)]
    assert [v.admitted for v in verdicts] == [True, True, True, False, False]
    assert verdicts[0].headers["RateLimit-Limit"] == "3", "the share in force is advertised"
    assert {v.outcome for v in verdicts} == {"store_failure_local"}
