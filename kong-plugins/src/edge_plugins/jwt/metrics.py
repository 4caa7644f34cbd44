"""Prometheus metrics of the edge-jwt plugin server, listed in
docs/plugins/edge-jwt.md (served on ``edge_jwt.DEFAULT_METRICS_PORT``).

Four families, plus two gauges that make the background machinery
visible (is the key set stale, is the revocation subscriber connected). Metrics are
registered once at import in ``prometheus_client``'s default registry, so they can be
recorded whether or not the HTTP server was started (unit tests, ``make bench``); the
``record_*`` helpers swallow every error: a metric must never fail a request.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from edge_plugins.metrics_server import children, safely

VALIDATIONS = Counter(
    "edge_jwt_validations_total",
    "Requests decided by edge-jwt, by result (accepted, anonymous, rejected, failed_open) "
    "and reason",
    ["result", "reason"],
)
JWKS_FETCHES = Counter(
    "edge_jwt_jwks_fetches_total",
    "JWKS fetches by result (ok, error, invalid)",
    ["result"],
)
CACHE_HITS = Counter(
    "edge_jwt_cache_hits_total",
    "Cache hits by cache (token: verified tokens; assertions are never reused)",
    ["cache"],
)
VERIFY_SECONDS = Histogram(
    "edge_jwt_verify_seconds",
    "Time to validate a token that was not in the verified-token cache",
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
    ),
)
JWKS_STALE = Gauge(
    "edge_jwt_jwks_stale",
    "1 while a remote key set is served past its TTL because refreshing it failed",
    ["source"],
)
REVOCATION_CONNECTED = Gauge(
    "edge_jwt_revocation_connected",
    "1 while the revocation subscriber is subscribed to its Redis channel",
    ["channel"],
)

_validations = children(VALIDATIONS)
_jwks_fetches = children(JWKS_FETCHES)
_cache_hits = children(CACHE_HITS)
_jwks_stale = children(JWKS_STALE)
_revocation_connected = children(REVOCATION_CONNECTED)


def record_validation(result: str, reason: str) -> None:
    safely(lambda: _validations(result, reason).inc(), "edge_jwt_validations_total")


def record_jwks_fetch(result: str) -> None:
    safely(lambda: _jwks_fetches(result).inc(), "edge_jwt_jwks_fetches_total")


def record_cache_hit(cache: str) -> None:
    safely(lambda: _cache_hits(cache).inc(), "edge_jwt_cache_hits_total")


def observe_verify_seconds(seconds: float, exemplar: dict[str, str] | None = None) -> None:
    """Observe one validation; ``exemplar`` links it to its trace (edge_plugins.exemplars)."""
    safely(lambda: VERIFY_SECONDS.observe(seconds, exemplar), "edge_jwt_verify_seconds")


def set_jwks_stale(source: str, stale: bool) -> None:
    safely(lambda: _jwks_stale(source).set(1 if stale else 0), "edge_jwt_jwks_stale")


def set_revocation_connected(channel: str, connected: bool) -> None:
    safely(
        lambda: _revocation_connected(channel).set(1 if connected else 0),
        "edge_jwt_revocation_connected",
    )
