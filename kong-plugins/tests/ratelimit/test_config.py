"""RateLimitConfig.from_kong: what Kong's schema cannot check, and where counters live."""

from __future__ import annotations

from typing import Any

import pytest

from edge_plugins.ratelimit.config import RateLimitConfig
from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.limits import Algorithm, Limit
from edge_plugins.ratelimit.redis_store import RedisSettings
from edge_plugins.ratelimit.schema import FIELDS, LimitBy, Policy, StoreFailure


def conf(**extra: Any) -> dict[str, Any]:
    return {"limits": [{"limit": 5, "period": "minute"}], **extra}


def test_defaults_and_scope() -> None:
    config = RateLimitConfig.from_kong(conf(route_id="r1", service_id="s1"))
    assert config.scope == "route:r1"
    assert config.limits == (Limit(5, 60),)
    assert config.limit_by is LimitBy.SUBJECT
    assert config.algorithm is Algorithm.SLIDING_WINDOW
    assert config.policy is Policy.LOCAL and config.redis is None
    assert config.on_store_failure is StoreFailure.LOCAL
    assert (config.error_code, config.error_message) == (429, "API rate limit exceeded")
    assert RateLimitConfig.from_kong(conf(service_id="s1")).scope == "service:s1"
    assert RateLimitConfig.from_kong(conf()).scope == "global"


def test_window_seconds_and_cost() -> None:
    config = RateLimitConfig.from_kong(
        {
            "limits": [
                {"limit": 10, "window_seconds": 90, "cost": 2},
                {"limit": 100, "period": "hour"},
            ]
        }
    )
    assert config.limits == (Limit(10, 90, cost_default=2), Limit(100, 3600))


def test_consumer_is_a_deprecated_alias_of_subject() -> None:
    """Configs written before `subject` existed keep their meaning: the token's subject,
    never a Kong Consumer. Kong's schema accepts both; `subject` is what the docs name."""
    assert RateLimitConfig.from_kong(conf(limit_by="consumer")).limit_by is LimitBy.SUBJECT
    assert RateLimitConfig.from_kong(conf(limit_by="subject")).limit_by is LimitBy.SUBJECT
    choices = FIELDS["limit_by"].choices
    assert {"subject", "consumer"} <= set(choices)
    assert FIELDS["limit_by"].default == "subject"
    assert "deprecated alias of `subject`" in FIELDS["limit_by"].description


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"limits": []}, "at least one limit"),
        ({"limits": [{"limit": 5}]}, "exactly one of"),
        ({"limits": [{"limit": 5, "period": "minute", "window_seconds": 60}]}, "exactly one of"),
        ({"limits": [{"limit": 5, "period": "week"}]}, "unknown period"),
        ({"limits": [{"limit": 5, "period": "minute", "cost": 6}]}, "can never fit"),
        ({"limits": [{"limit": 5, "period": "minute", "burst": 2}]}, "gcra algorithm only"),
        ({"limit_by": "header"}, "header_name"),
        ({"policy": "redis", "redis": {"url": "http://cache"}}, "redis.url"),
    ],
)
def test_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(LimitConfigError, match=message):
        RateLimitConfig.from_kong(conf(**extra))


def test_redis_settings_and_no_redis_means_local() -> None:
    config = RateLimitConfig.from_kong(
        conf(
            policy="redis",
            redis={
                "url": "redis://user:pw@cache:6380/2",
                "timeout_ms": 20,
                "key_prefix": "p",
                "breaker_threshold": 2,
                "breaker_reset_seconds": 7,
            },
        )
    )
    assert config.redis is not None
    assert (config.redis.url, config.redis.timeout_ms, config.redis.key_prefix) == (
        "redis://user:pw@cache:6380/2",
        20,
        "p",
    )
    assert (config.redis.breaker_threshold, config.redis.breaker_reset_seconds) == (2, 7.0)
    mode = config.describe_mode()
    assert "redis://cache:6380/2" in mode and "pw" not in mode and "limit/1" in mode
    assert config.redis.address == "redis://cache:6380/2"
    assert (
        RedisSettings(host="cache", port=6390, db=4, password="pw", ssl=True).address
        == "rediss://cache:6390/4"
    )
    # An unresolved {vault://env/...} reference arrives as "" (kong/db/schema/init.lua
    # keeps it and names the reference in $refs): count locally.
    unresolved = RateLimitConfig.from_kong(
        conf(
            policy="redis",
            redis={
                "port": 6379,
                "url": "",
                "$refs": {"url": "{vault://env/edge-rate-limit-redis-url}"},
            },
        )
    )
    assert unresolved.redis is None
    assert unresolved.describe_mode().startswith("policy local")


def test_fallback_limits_split_across_nodes() -> None:
    config = RateLimitConfig.from_kong(
        {
            "expected_nodes": 3,
            "algorithm": "gcra",
            "limits": [
                {"limit": 10, "period": "minute", "cost": 4, "burst": 9},
                {"limit": 2, "period": "hour"},
            ],
        }
    )
    first, second = config.fallback_limits
    assert (first.limit, first.burst, first.cost_default) == (3, 3, 3)
    assert (second.limit, second.cost_default) == (1, 1), "never below one unit per node"
    assert first.window_seconds == 60 and second.window_seconds == 3600


def test_ipv6_prefix_defaults_to_64_and_is_bounded() -> None:
    assert RateLimitConfig.from_kong(conf()).ipv6_prefix == 64
    assert RateLimitConfig.from_kong(conf(ipv6_prefix=48)).ipv6_prefix == 48
    for outside in (31, 129, "64", True):
        with pytest.raises(LimitConfigError, match="ipv6_prefix"):
            RateLimitConfig.from_kong(conf(ipv6_prefix=outside))


def test_kong_schema_bounds_ipv6_prefix() -> None:
    from edge_plugins import edge_rate_limit

    (field,) = [f["ipv6_prefix"] for f in edge_rate_limit.Schema if "ipv6_prefix" in f]
    assert (field["type"], field["default"], list(field["between"])) == ("integer", 64, [32, 128])
