"""``edge-rate-limit``: exact per-route limits, shared across gateway nodes (issue 4).

A thin Kong entry over the PDK-free core in :mod:`edge_plugins.ratelimit` (algorithms,
stores, headers, the verdict). PDK round trips per request, each a MessagePack-RPC
exchange with Kong:

* **happy path: 2** — one read of what the key needs (``kong.client.get_forwarded_ip``,
  ``kong.ctx.shared.get("edge.subject")``, ``kong.request.get_header``,
  ``kong.request.get_path``, ``kong.router.get_route`` or ``get_service``) and one
  ``kong.response.set_headers`` with the rate-limit headers (none when
  ``hide_client_headers`` or ``shadow``: then 1);
* ``limit_by: consumer`` on an anonymous request, or ``header`` when the header is
  absent: one more read, the client IP;
* rejection: the read, one ``kong.request.get_header`` for the request id that edge-trace
  set (the body names it when well formed), and the terminal ``kong.response.exit``; if
  building that answer fails, the guard still answers the status with ``Retry-After``;
* the first request of a route (or service) in this process: one ``kong.router.get_route``
  (``get_service``) for the metrics label, cached for the life of the process.

Counter state is never kept on ``self`` — Kong creates one instance per worker and per
config change — but in process-wide stores (``local_limiter()``, ``redis_limiter_for()``).

The plugin server serves Prometheus metrics on ``--metrics-port`` of its start command
(default 9103; ``0`` disables them): Kong gives plugin servers no environment
(:mod:`edge_plugins.server`).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from edge_plugins.guard import (
    FailurePolicy,
    answering_rejection,
    error_request,
    exit_request,
    guarded,
)

NAME = "edge-rate-limit"
version = "0.1.0"
priority = 910

DEFAULT_METRICS_PORT = 9103
SHARED_SUBJECT_KEY = "edge.subject"  # set by edge-jwt (priority 1450, runs before us)

log = logging.getLogger("edge_plugins.edge_rate_limit")

_PERIODS = ["second", "minute", "hour", "day"]

# Kong plugin schema (kong/db/schema/metaschema.lua). Rules across fields (one of
# window_seconds/period per limit, header_name with limit_by header, a cost that fits)
# are checked by RateLimitConfig.from_kong at StartInstance.
Schema = (
    {
        "limits": {
            "type": "array",
            "required": True,
            "len_min": 1,
            "elements": {
                "type": "record",
                "fields": [
                    {"limit": {"type": "integer", "required": True, "between": [1, 1_000_000_000]}},
                    {"window_seconds": {"type": "integer", "between": [1, 366 * 86400]}},
                    {"period": {"type": "string", "one_of": _PERIODS}},
                    {"cost": {"type": "integer", "default": 1, "between": [1, 1_000_000_000]}},
                    {"burst": {"type": "integer", "between": [1, 1_000_000_000]}},
                ],
            },
        }
    },
    {
        "limit_by": {
            "type": "string",
            "default": "consumer",
            "one_of": ["ip", "consumer", "header", "path", "service", "route"],
        }
    },
    {"header_name": {"type": "string", "len_min": 1}},
    {
        "algorithm": {
            "type": "string",
            "default": "sliding_window",
            "one_of": ["sliding_window", "gcra"],
        }
    },
    {"policy": {"type": "string", "default": "local", "one_of": ["local", "redis"]}},
    {
        "redis": {
            "type": "record",
            "required": True,
            "fields": [
                {"url": {"type": "string", "referenceable": True}},
                {"host": {"type": "string", "referenceable": True}},
                {"port": {"type": "integer", "default": 6379, "between": [1, 65535]}},
                {"database": {"type": "integer", "default": 0, "between": [0, 1000]}},
                {"username": {"type": "string", "referenceable": True}},
                {"password": {"type": "string", "referenceable": True}},
                {"ssl": {"type": "boolean", "default": False}},
                {"timeout_ms": {"type": "integer", "default": 50, "between": [1, 5000]}},
                {"key_prefix": {"type": "string", "default": "edge-rl", "len_min": 1}},
                {"breaker_threshold": {"type": "integer", "default": 3, "between": [1, 1000]}},
                {"breaker_reset_seconds": {"type": "integer", "default": 5, "between": [1, 3600]}},
            ],
        }
    },
    {
        "on_store_failure": {
            "type": "string",
            "default": "local",
            "one_of": ["open", "closed", "local"],
        }
    },
    {"expected_nodes": {"type": "integer", "default": 1, "between": [1, 1000]}},
    {"shadow": {"type": "boolean", "default": False}},
    {"ietf_headers": {"type": "boolean", "default": True}},
    {"kong_headers": {"type": "boolean", "default": True}},
    {"hide_client_headers": {"type": "boolean", "default": False}},
    {"error_code": {"type": "integer", "default": 429, "between": [400, 599]}},
    {"error_message": {"type": "string", "default": "API rate limit exceeded", "len_min": 1}},
    {"request_id_header": {"type": "string", "default": "x-request-id", "len_min": 1}},
)

# Metrics label of each scope ("route:<id>" → the route's name), looked up once per process.
_labels: dict[str, str] = {}
_labels_lock = threading.Lock()


class Plugin:
    """One instance per plugin config and Kong worker (plugin.lua)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # StartInstance: never raise for a schema-valid config (a raise here is Kong's 500
        # for every request); a config the core refuses answers 500 per request instead.
        self.failure_policy = FailurePolicy.CLOSED
        self.config: Any = None
        self.config_error: str | None = None
        self._enforcer: Any = None
        try:
            from edge_plugins.ratelimit.config import RateLimitConfig

            self.config = RateLimitConfig.from_kong(config)
        except Exception as exc:  # noqa: BLE001 - reported on every request instead
            self.config_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "edge-rate-limit config rejected (requests answer 500): %s", self.config_error
            )
            return
        # A bug in deciding must not take the API down: admit (logged). Store outages
        # are not bugs: on_store_failure says what they turn into.
        self.failure_policy = FailurePolicy.OPEN
        log.info("edge-rate-limit %s: %s", self.config.scope, self.config.describe_mode())

    @guarded
    def access(self, kong: Any) -> None:
        config = self.config
        if config is None:
            kong.log.err("edge-rate-limit config unusable: ", self.config_error)
            raise RuntimeError("edge-rate-limit config unusable")
        client_key = self._client_key(kong, config)  # first PDK call: see kong-pdk's e_lock
        verdict = self._get_enforcer(kong, config).decide(client_key)
        if verdict.admitted:
            if verdict.headers:
                kong.response.set_headers(verdict.headers)
            return
        # Decided: from here a failure still rejects (the guard answers the status with
        # Retry-After); the OPEN policy is for requests that could not be decided.
        with answering_rejection(verdict.status, verdict.fallback_headers):
            if verdict.body is None:
                error_request(kong, verdict.status, None, verdict.headers)
            request_id = kong.request.get_header(config.request_id_header)
            exit_request(
                kong,
                verdict.status,
                verdict.json_body(request_id),
                {**verdict.headers, "Content-Type": "application/json"},
            )

    @staticmethod
    def _client_key(kong: Any, config: Any) -> str:
        from edge_plugins.ratelimit.config import LimitBy

        by = config.limit_by
        if by is LimitBy.CONSUMER:
            subject = kong.ctx.shared.get(SHARED_SUBJECT_KEY)
            if subject:
                return f"sub:{subject}"
        elif by is LimitBy.HEADER:
            value = kong.request.get_header(config.header_name)
            if value:
                return f"hdr:{value}"
        elif by is LimitBy.PATH:
            return f"path:{kong.request.get_path()}"
        elif by is LimitBy.ROUTE:
            route = kong.router.get_route() or {}
            return f"route:{route.get('id', '')}"
        elif by is LimitBy.SERVICE:
            service = kong.router.get_service() or {}
            return f"service:{service.get('id', '')}"
        return f"ip:{kong.client.get_forwarded_ip()}"

    def _get_enforcer(self, kong: Any, config: Any) -> Any:
        if self._enforcer is None:
            from edge_plugins.ratelimit.enforcer import Enforcer

            self._enforcer = Enforcer(config, route_label=_scope_label(kong, config.scope))
        return self._enforcer


def _scope_label(kong: Any, scope: str) -> str:
    """The route (service) name for metrics, asked of Kong once per scope and process."""
    label = _labels.get(scope)
    if label is not None:
        return label
    kind = scope.partition(":")[0]
    if kind == "route":
        entity = kong.router.get_route() or {}
    elif kind == "service":
        entity = kong.router.get_service() or {}
    else:
        entity = {"name": "global"}
    label = str(entity.get("name") or entity.get("id") or scope)
    with _labels_lock:
        _labels.setdefault(scope, label)
    return label


def main() -> None:
    from edge_plugins.server import run_plugin

    run_plugin(sys.modules[__name__], preload=("edge_plugins.ratelimit.enforcer",))


if __name__ == "__main__":
    main()
