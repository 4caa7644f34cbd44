"""Every edge-rate-limit setting, once: Kong's schema (``edge_rate_limit.Schema``), the
defaults and choices :class:`~edge_plugins.ratelimit.config.RateLimitConfig` applies, and
docs/plugins/edge-rate-limit.md.

Rules across fields (one of ``window_seconds``/``period`` per limit, ``header_name`` with
``limit_by: header``, a cost that fits) are checked by ``RateLimitConfig.from_kong``: a
record of an external plugin cannot carry entity checks.
"""

from __future__ import annotations

import enum

from edge_plugins.kong_schema import Field, FieldTable
from edge_plugins.ratelimit.client_address import DEFAULT_IPV6_PREFIX, IPV6_PREFIX_RANGE
from edge_plugins.ratelimit.limits import PERIODS, Algorithm

MAX_COUNT = 1_000_000_000


class LimitBy(enum.StrEnum):
    IP = "ip"  # kong.client.get_forwarded_ip(): the client as Kong sees it
    SUBJECT = "subject"  # the token subject edge-jwt shares; the IP when anonymous
    HEADER = "header"  # a request header's value; the IP when absent
    PATH = "path"
    SERVICE = "service"  # one counter for the whole scope
    ROUTE = "route"


class Policy(enum.StrEnum):
    LOCAL = "local"  # counters in this plugin-server process (one per gateway node)
    REDIS = "redis"  # counters shared by every node through Redis


class StoreFailure(enum.StrEnum):
    OPEN = "open"  # admit the request
    CLOSED = "closed"  # 503 + Retry-After
    LOCAL = "local"  # per-node counters at limit ÷ expected_nodes


# Old names Kong's schema still accepts, and what they mean. `consumer` never meant a Kong
# Consumer (edge-jwt does not authenticate one): it was always the token's subject.
DEPRECATED_LIMIT_BY = {"consumer": LimitBy.SUBJECT}


def _choices(kind: type[enum.StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in kind)


def limit_by_of(value: str) -> LimitBy:
    """The :class:`LimitBy` a configured value names, a deprecated alias included."""
    return DEPRECATED_LIMIT_BY.get(value) or LimitBy(value)


REDIS_FIELDS = (
    Field(
        "url",
        "string",
        "Redis URL (`redis://`, `rediss://`, `unix://`); wins over host, port and the rest.",
        referenceable=True,
    ),
    Field("host", "string", "Redis host, when no `url` is given.", referenceable=True),
    Field("port", "integer", "Redis port.", default=6379, between=(1, 65535)),
    Field("database", "integer", "Redis database number.", default=0, between=(0, 1000)),
    Field("username", "string", "Redis ACL user name.", referenceable=True),
    Field("password", "string", "Redis password (never logged).", referenceable=True),
    Field("ssl", "boolean", "Connect to Redis over TLS.", default=False),
    Field(
        "timeout_ms",
        "integer",
        "How long one Redis call may take before it counts as a failure, in milliseconds.",
        default=50,
        between=(1, 5000),
    ),
    Field(
        "key_prefix",
        "string",
        "Prefix of the counter keys in Redis.",
        default="edge-rl",
        len_min=1,
    ),
    Field(
        "breaker_threshold",
        "integer",
        "Consecutive Redis failures that open the circuit breaker.",
        default=3,
        between=(1, 1000),
    ),
    Field(
        "breaker_reset_seconds",
        "integer",
        "How long the open breaker skips Redis before trying again, in seconds; also the "
        "`Retry-After` of a 503 under `on_store_failure: closed`.",
        default=5,
        between=(1, 3600),
    ),
)

FIELDS = FieldTable(
    Field(
        "limits",
        "array",
        "The limits, all enforced; a request is rejected when any one is exhausted.",
        required=True,
        len_min=1,
        elements=Field(
            "",
            "record",
            fields=(
                Field(
                    "limit",
                    "integer",
                    "Requests (cost units) allowed per window.",
                    required=True,
                    between=(1, MAX_COUNT),
                ),
                Field(
                    "window_seconds",
                    "integer",
                    "Window length in seconds; give this or `period`.",
                    between=(1, 366 * 86400),
                ),
                Field(
                    "period",
                    "string",
                    "Window as a named period; give this or `window_seconds`.",
                    one_of=tuple(PERIODS),
                ),
                Field(
                    "cost",
                    "integer",
                    "Units one request takes from this limit.",
                    default=1,
                    between=(1, MAX_COUNT),
                ),
                Field(
                    "burst",
                    "integer",
                    "Most units admitted at once (`gcra` only); default: the limit.",
                    between=(1, MAX_COUNT),
                ),
            ),
        ),
    ),
    Field(
        "limit_by",
        "string",
        "What a counter belongs to: the client IP, the `subject` of the token edge-jwt "
        "verified (the IP when anonymous), a header's value (the IP when absent), the path, "
        "or the whole service or route. `consumer` is a deprecated alias of `subject`: "
        "Kong Consumers are not used.",
        default=LimitBy.SUBJECT.value,
        one_of=(*_choices(LimitBy), *DEPRECATED_LIMIT_BY),
    ),
    Field("header_name", "string", "The header counted by with `limit_by: header`.", len_min=1),
    Field(
        "ipv6_prefix",
        "integer",
        "Wherever a client is counted by its IP: IPv6 addresses sharing their first this many "
        "bits are one client (a host usually holds a whole /64); `128` counts each address. "
        "IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) count as their IPv4 address.",
        default=DEFAULT_IPV6_PREFIX,
        between=IPV6_PREFIX_RANGE,
    ),
    Field(
        "algorithm",
        "string",
        "`sliding_window`: never more than the limit in any window; `gcra`: a smooth rate "
        "with a burst.",
        default=Algorithm.SLIDING_WINDOW.value,
        one_of=_choices(Algorithm),
    ),
    Field(
        "policy",
        "string",
        "Where the counters live: `local` (this plugin server, so per gateway node) or "
        "`redis` (shared by every node).",
        default=Policy.LOCAL.value,
        one_of=_choices(Policy),
    ),
    Field(
        "redis",
        "record",
        "The Redis that holds shared counters under `policy: redis`.",
        required=True,
        fields=REDIS_FIELDS,
    ),
    Field(
        "on_store_failure",
        "string",
        "What a Redis failure turns into: `open` admits, `closed` answers 503 with "
        "`Retry-After`, `local` counts per node at limit ÷ `expected_nodes`.",
        default=StoreFailure.LOCAL.value,
        one_of=_choices(StoreFailure),
    ),
    Field(
        "expected_nodes",
        "integer",
        "Gateway nodes sharing the limit, for the per-node share when Redis fails.",
        default=1,
        between=(1, 1000),
    ),
    Field(
        "shadow",
        "boolean",
        "Count and report, but never reject (and send no rate-limit headers).",
        default=False,
    ),
    Field(
        "ietf_headers",
        "boolean",
        "Send the IETF draft `RateLimit` and `RateLimit-Policy` headers.",
        default=True,
    ),
    Field(
        "kong_headers",
        "boolean",
        "Send Kong's `X-RateLimit-Limit-*` and `X-RateLimit-Remaining-*` headers.",
        default=True,
    ),
    Field(
        "hide_client_headers",
        "boolean",
        "Send no rate-limit headers at all (a rejection keeps `Retry-After`).",
        default=False,
    ),
    Field(
        "error_code",
        "integer",
        "Status of a rejection.",
        default=429,
        between=(400, 599),
    ),
    Field(
        "error_message",
        "string",
        "The `detail` and `message` of a rejection's body.",
        default="API rate limit exceeded",
        len_min=1,
    ),
    Field(
        "request_id_header",
        "string",
        "Request header whose id (set by edge-trace) a rejection's body names.",
        default="x-request-id",
        len_min=1,
    ),
)
