"""Header rendering: IETF draft-11 RateLimit-Policy / RateLimit, Kong's fields, Retry-After."""

from __future__ import annotations

import pytest

from edge_plugins.ratelimit.headers import (
    policy_names,
    rate_limit_headers,
    ratelimit,
    ratelimit_policy,
    retry_after,
)
from edge_plugins.ratelimit.limits import Decision, Limit
from edge_plugins.ratelimit.sliding_window import SlidingWindowLog

MINUTE_5 = Limit.per("minute", 5)
HOUR_100 = Limit.per("hour", 100)


def test_one_limit_admitted() -> None:
    decision = Decision(True, 5, 2, 39.2)
    assert rate_limit_headers([(MINUTE_5, decision)]) == {
        "RateLimit-Policy": '"minute";q=5;w=60',
        "RateLimit": '"minute";r=2;t=40',
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "40",
        "X-RateLimit-Limit-Minute": "5",
        "X-RateLimit-Remaining-Minute": "2",
    }


def test_sixth_login_is_told_when_to_come_back() -> None:
    store = SlidingWindowLog()
    for i in range(5):
        store.take("ip", MINUTE_5, now=100.0 + i)
    sixth = store.take("ip", MINUTE_5, now=120.5)
    headers = rate_limit_headers([(MINUTE_5, sixth)])
    assert headers["Retry-After"] == "40"  # 39.5 s rounded up
    assert headers["RateLimit"] == '"minute";r=0;t=40'
    assert headers["RateLimit-Remaining"] == "0"


def test_several_limits_most_restrictive_drives_ratelimit_and_retry_after() -> None:
    ninety = Limit(10, 90)
    pairs = [
        (MINUTE_5, Decision(True, 5, 3, 12.0)),
        (HOUR_100, Decision(False, 100, 0, 1800.0, 1799.01)),
        (ninety, Decision(True, 10, 9, 90.0)),
    ]
    headers = rate_limit_headers(pairs)
    assert headers["RateLimit-Policy"] == (
        '"minute";q=5;w=60, "hour";q=100;w=3600, "90s";q=10;w=90'
    )
    assert headers["RateLimit"] == '"hour";r=0;t=1800'
    assert headers["Retry-After"] == "1800"
    assert (
        headers["RateLimit-Limit"],
        headers["RateLimit-Remaining"],
        headers["RateLimit-Reset"],
    ) == ("100", "0", "1800")
    assert headers["X-RateLimit-Remaining-Minute"] == "3"
    assert headers["X-RateLimit-Limit-Hour"] == "100"
    assert not any(name.endswith("90s") for name in headers), "no Kong name for 90 s"


def test_admitted_tightest_is_fewest_remaining() -> None:
    pairs = [(MINUTE_5, Decision(True, 5, 4, 60.0)), (HOUR_100, Decision(True, 100, 1, 10.0))]
    headers = rate_limit_headers(pairs)
    assert headers["RateLimit"] == '"hour";r=1;t=10'
    assert "Retry-After" not in headers


def test_switches_and_retry_after_always_on_reject() -> None:
    rejected = [(MINUTE_5, Decision(False, 5, 0, 0.2, 0.2))]
    assert rate_limit_headers(rejected, ietf=False, kong=False) == {"Retry-After": "1"}
    only_ietf = rate_limit_headers(rejected, kong=False)
    assert set(only_ietf) == {"RateLimit-Policy", "RateLimit", "Retry-After"}
    with pytest.raises(ValueError):
        rate_limit_headers([])


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after([(MINUTE_5, Decision(True, 5, 1, 3.0))]) is None
    assert retry_after([(MINUTE_5, Decision(False, 5, 0, 3.0, 3.0))]) == "3"
    assert retry_after([(MINUTE_5, Decision(False, 5, 0, 3.0, 3.000001))]) == "4"
    assert retry_after([(MINUTE_5, Decision(False, 5, 0, 1e-9, 1e-9))]) == "1"


def test_names_are_distinct_and_fields_well_formed() -> None:
    assert policy_names([MINUTE_5, Limit.per("minute", 20), HOUR_100]) == [
        "minute-5",
        "minute-20",
        "hour",
    ]
    assert policy_names([MINUTE_5, MINUTE_5]) == ["minute-5-1", "minute-5-2"]
    assert ratelimit_policy([Limit(3, 0.5)]) == '"0.5s";q=3;w=1'
    assert ratelimit("day", Decision(True, 9, 8, 0.0)) == '"day";r=8;t=0'
