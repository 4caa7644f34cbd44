"""The edge-rate-limit configuration, validated once per plugin instance (StartInstance).

Kong validates types, ranges and defaults with the plugin's schema, built from the table in
:mod:`edge_plugins.ratelimit.schema` whose defaults this parser applies too. What the
schema of an external plugin cannot say (its records carry no entity checks) is checked
here: each limit names exactly one of ``window_seconds`` / ``period``, a cost fits
its limit, ``header`` needs ``header_name``, a Redis policy needs somewhere to connect
(and ``ipv6_prefix`` is in its bounds, since a value past them would fail every request).

Where the counters live (``scope``) comes from the ids Kong adds to every config
(kong/runloop/plugins_iterator.lua ``get_plugin_config``): a route's plugin counts per
route, a service's per service, a global one across every route it applies to (as Kong's
bundled rate-limiting plugin does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_plugins.kong_schema import Field
from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.limits import PERIODS, Algorithm, Limit
from edge_plugins.ratelimit.redis_store import RedisSettings
from edge_plugins.ratelimit.schema import FIELDS, LimitBy, Policy, StoreFailure, limit_by_of


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    scope: str
    limits: tuple[Limit, ...]
    limit_by: LimitBy
    header_name: str | None
    ipv6_prefix: int
    algorithm: Algorithm
    policy: Policy
    redis: RedisSettings | None
    on_store_failure: StoreFailure
    expected_nodes: int
    shadow: bool
    ietf_headers: bool
    kong_headers: bool
    hide_client_headers: bool
    error_code: int
    error_message: str
    request_id_header: str

    @property
    def fallback_limits(self) -> tuple[Limit, ...]:
        """Each limit's share on one node when the shared store is down.

        ``limit // expected_nodes`` (at least 1) keeps the cluster-wide total at or under the
        limit; a cost or burst larger than the share is capped to it so every request that
        fits the share can still be admitted.
        """
        nodes = self.expected_nodes
        shares = []
        for limit in self.limits:
            share = max(1, limit.limit // nodes)
            burst = None if limit.burst is None else max(1, min(share, limit.burst // nodes))
            cost = min(limit.cost_default, share if burst is None else burst)
            shares.append(Limit(share, limit.window_seconds, cost_default=cost, burst=burst))
        return tuple(shares)

    def describe_mode(self) -> str:
        """One line for the log: where the counters are and what happens when Redis fails."""
        local = "counters in this process, limits hold per gateway node"
        if self.policy is Policy.LOCAL:
            return f"policy local: {local}"
        if self.redis is None:
            return f"policy local (redis configured without an address): {local}"
        where = self.redis.address
        failure = {
            StoreFailure.OPEN: "admit",
            StoreFailure.CLOSED: "answer 503",
            StoreFailure.LOCAL: f"count per node at limit/{self.expected_nodes}",
        }[self.on_store_failure]
        return f"policy redis at {where}: shared by every node; when Redis fails: {failure}"

    @classmethod
    def from_kong(cls, conf: Mapping[str, Any]) -> RateLimitConfig:
        """Build from the config Kong sends (unset optional fields are absent keys)."""
        algorithm = Algorithm(_value(conf, FIELDS["algorithm"]))
        limits = tuple(_limit(entry, algorithm) for entry in conf.get("limits") or ())
        if not limits:
            raise LimitConfigError("at least one limit is required")
        limit_by = limit_by_of(_value(conf, FIELDS["limit_by"]))
        header_name = (conf.get("header_name") or "").strip().lower() or None
        if limit_by is LimitBy.HEADER and header_name is None:
            raise LimitConfigError("limit_by 'header' needs header_name")
        policy = Policy(_value(conf, FIELDS["policy"]))
        redis = _redis(conf.get("redis") or {}) if policy is Policy.REDIS else None
        return cls(
            scope=_scope(conf),
            limits=limits,
            limit_by=limit_by,
            header_name=header_name,
            ipv6_prefix=_ipv6_prefix(conf),
            algorithm=algorithm,
            policy=policy,
            redis=redis,
            on_store_failure=StoreFailure(_value(conf, FIELDS["on_store_failure"])),
            expected_nodes=int(_value(conf, FIELDS["expected_nodes"])),
            shadow=bool(_flag(conf, FIELDS["shadow"])),
            ietf_headers=bool(_flag(conf, FIELDS["ietf_headers"])),
            kong_headers=bool(_flag(conf, FIELDS["kong_headers"])),
            hide_client_headers=bool(_flag(conf, FIELDS["hide_client_headers"])),
            error_code=int(_value(conf, FIELDS["error_code"])),
            error_message=_value(conf, FIELDS["error_message"]),
            request_id_header=_value(conf, FIELDS["request_id_header"]).lower(),
        )


def _value(conf: Mapping[str, Any], field: Field) -> Any:
    """The setting, or its default when unset (absent, null, or empty)."""
    return conf.get(field.name) or field.default


def _flag(conf: Mapping[str, Any], field: Field) -> Any:
    """A boolean setting, its default only when absent."""
    return conf.get(field.name, field.default)


def _ipv6_prefix(conf: Mapping[str, Any]) -> int:
    """Kong's schema bounds it; a value past them would fail every request, so refuse it."""
    field = FIELDS["ipv6_prefix"]
    prefix = _value(conf, field)
    if isinstance(prefix, bool) or not isinstance(prefix, int):
        raise LimitConfigError("ipv6_prefix must be an integer")
    if not field.low <= prefix <= field.high:
        raise LimitConfigError(f"ipv6_prefix must be between {field.low} and {field.high}")
    return prefix


def _scope(conf: Mapping[str, Any]) -> str:
    if conf.get("route_id"):
        return f"route:{conf['route_id']}"
    if conf.get("service_id"):
        return f"service:{conf['service_id']}"
    return "global"


def _limit(entry: Mapping[str, Any], algorithm: Algorithm) -> Limit:
    window, period = entry.get("window_seconds"), entry.get("period")
    if (window is None) == (period is None):
        raise LimitConfigError("each limit needs exactly one of window_seconds and period")
    if period is not None and period not in PERIODS:
        raise LimitConfigError(f"unknown period {period!r}")
    seconds = PERIODS[period] if period is not None else entry["window_seconds"]
    burst = entry.get("burst")
    if burst is not None and algorithm is not Algorithm.GCRA:
        raise LimitConfigError("burst applies to the gcra algorithm only")
    return Limit(
        int(entry["limit"]),
        seconds,
        cost_default=int(_value(entry, FIELDS["limits"].member("cost"))),
        burst=None if burst is None else int(burst),
    )


def _redis(conf: Mapping[str, Any]) -> RedisSettings | None:
    """The Redis settings, or ``None`` when no address is configured.

    An unset URL (a ``{vault://env/…}`` reference that resolved to nothing) with no host
    means this deployment has no Redis: the plugin then counts locally and says so.
    """
    url = conf.get("url") or None
    host = conf.get("host") or None
    if url is None and host is None:
        return None
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise LimitConfigError("redis.url must start with redis://, rediss:// or unix://")
    redis = FIELDS["redis"]
    return RedisSettings(
        url=url,
        host=host or "127.0.0.1",
        port=int(_value(conf, redis.member("port"))),
        db=int(_value(conf, redis.member("database"))),
        username=conf.get("username") or None,
        password=conf.get("password") or None,
        ssl=bool(_flag(conf, redis.member("ssl"))),
        timeout_ms=int(_value(conf, redis.member("timeout_ms"))),
        key_prefix=_value(conf, redis.member("key_prefix")),
        breaker_threshold=int(_value(conf, redis.member("breaker_threshold"))),
        breaker_reset_seconds=float(_value(conf, redis.member("breaker_reset_seconds"))),
    )
