"""Prometheus metrics of the edge-rate-limit plugin server, listed in
docs/plugins/edge-rate-limit.md (served on ``edge_rate_limit.DEFAULT_METRICS_PORT``).

Registered once at import in ``prometheus_client``'s default registry, served by
:mod:`edge_plugins.metrics_server`. Recording never fails a request (``safely``).

* ``edge_rate_limit_decisions_total{route, outcome}`` — exactly one outcome per request, so
  the family sums to the request count: ``allowed``, ``rejected``, ``shadow_rejected``
  (over the limit, let through because the instance is in shadow mode), or, when the
  shared store failed, the mode that decided instead: ``store_failure_open`` (admitted),
  ``store_failure_closed`` (503) or ``store_failure_local`` (decided by the per-node
  fallback counters, admitted or rejected);
* ``edge_rate_limit_near_limit_total{route}`` — admitted with at least 80 % of the tightest
  limit used: the early warning before clients start seeing 429s;
* ``edge_rate_limit_store_seconds`` — each Redis round trip, failed ones included;
* ``edge_rate_limit_breaker_state{store}`` — 0 closed, 1 half-open, 2 open.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from edge_plugins.metrics_server import children, safely

NEAR_LIMIT_RATIO = 0.8

DECISIONS = Counter(
    "edge_rate_limit_decisions_total",
    "Requests decided by edge-rate-limit, by route and outcome",
    ["route", "outcome"],
)
NEAR_LIMIT = Counter(
    "edge_rate_limit_near_limit_total",
    "Admitted requests that left at most 20% of the tightest limit",
    ["route"],
)
STORE_SECONDS = Histogram(
    "edge_rate_limit_store_seconds",
    "Duration of one decision round trip to the shared store (Redis), failures included",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
BREAKER_STATE = Gauge(
    "edge_rate_limit_breaker_state",
    "Circuit breaker in front of the shared store: 0 closed, 1 half-open, 2 open",
    ["store"],
)
_BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_decisions = children(DECISIONS)
_near_limit = children(NEAR_LIMIT)
_breaker_state = children(BREAKER_STATE)


def record_decision(route: str, outcome: str) -> None:
    safely(
        lambda: _decisions(route, outcome).inc(),
        "edge_rate_limit_decisions_total",
    )


def record_near_limit(route: str) -> None:
    safely(lambda: _near_limit(route).inc(), "edge_rate_limit_near_limit_total")


def observe_store_seconds(seconds: float) -> None:
    safely(lambda: STORE_SECONDS.observe(seconds), "edge_rate_limit_store_seconds")


def set_breaker_state(store: str, state: str) -> None:
    safely(
        lambda: _breaker_state(store).set(_BREAKER_VALUES.get(state, 2)),
        "edge_rate_limit_breaker_state",
    )
