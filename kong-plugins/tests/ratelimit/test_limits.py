"""Limit validation, named periods, Decision invariants, choosing the tightest limit."""

from __future__ import annotations

import math

import pytest

from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.limits import PERIODS, Decision, Limit, delay_until, most_restrictive


def test_named_periods() -> None:
    assert PERIODS == {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    limit = Limit.per("minute", 5)
    assert (limit.limit, limit.window_seconds, limit.cost_default) == (5, 60.0, 1)
    assert limit.period == "minute" and limit.label == "minute"
    assert Limit(3, 90).label == "90s" and Limit(3, 90).period is None
    assert Limit(2, 3600) == Limit.per("hour", 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0, "window_seconds": 60},
        {"limit": -1, "window_seconds": 60},
        {"limit": True, "window_seconds": 60},
        {"limit": 1.5, "window_seconds": 60},
        {"limit": 5, "window_seconds": 0},
        {"limit": 5, "window_seconds": -1},
        {"limit": 5, "window_seconds": math.inf},
        {"limit": 5, "window_seconds": math.nan},
        {"limit": 5, "window_seconds": "60"},
        {"limit": 5, "window_seconds": 60, "cost_default": 0},
        {"limit": 5, "window_seconds": 60, "cost_default": 6},
        {"limit": 5, "window_seconds": 60, "burst": 0},
        {"limit": 5, "window_seconds": 60, "burst": 2, "cost_default": 3},
    ],
)
def test_invalid_limits_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(LimitConfigError):
        Limit(**kwargs)
    assert issubclass(LimitConfigError, ValueError)


def test_unknown_period() -> None:
    with pytest.raises(LimitConfigError, match="unknown period"):
        Limit.per("fortnight", 1)


def test_cost_that_can_never_fit_is_refused() -> None:
    limit = Limit(5, 60)
    assert limit.check_cost(5) == 5
    for bad in (0, 6, 2.0, None):
        with pytest.raises(LimitConfigError):
            limit.check_cost(bad)


def test_retry_after_set_exactly_on_rejection() -> None:
    Decision(True, 5, 4, 60.0)
    Decision(False, 5, 0, 10.0, 10.0)
    with pytest.raises(ValueError):
        Decision(True, 5, 4, 60.0, 1.0)
    with pytest.raises(ValueError):
        Decision(False, 5, 0, 10.0)


def test_delay_until_is_enough_to_wait() -> None:
    assert delay_until(5.0, 7.0) == 0.0
    for now, deadline in [(0.1, 0.3), (1e9 + 0.1, 1e9 + 60.3), (3.0, 3.0000000001)]:
        delay = delay_until(deadline, now)
        assert now + delay >= deadline
        assert delay > 0


def test_most_restrictive() -> None:
    a = (Limit(5, 60), Decision(True, 5, 3, 10.0))
    b = (Limit(100, 3600), Decision(True, 100, 1, 100.0))
    c = (Limit(2, 1), Decision(False, 2, 0, 0.5, 0.5))
    d = (Limit(10, 86400), Decision(False, 10, 0, 9000.0, 9000.0))
    assert most_restrictive([a, b]) is b
    assert most_restrictive([a, b, c]) is c
    assert most_restrictive([a, c, d]) is d
    with pytest.raises(ValueError):
        most_restrictive([])
