"""``edge-rate-limit``: exact per-route limits, shared across gateway nodes.

A thin Kong entry over the PDK-free core in :mod:`edge_plugins.ratelimit` (algorithms,
stores, headers, the verdict). Per request it makes one read of what the key needs
(``kong.client.get_forwarded_ip``, the subject edge-jwt shared, ``kong.request.get_header``,
``kong.request.get_path``, ``kong.router.get_route`` or ``get_service``) and one
``kong.response.set_headers`` with the rate-limit headers; ``PDK_CALLS`` lists every
case, each call a MessagePack-RPC round trip to Kong. The first request of a route (or
service) in this process asks for its name once, for the metrics label.

Counter state is never kept on ``self`` — Kong creates one instance per worker and per
config change — but in process-wide stores (``local_limiter()``, ``redis_limiter_for()``).

The plugin server serves Prometheus metrics on ``--metrics-port`` of its start command
(default ``DEFAULT_METRICS_PORT``; ``0`` disables them): Kong gives plugin servers no
environment (:mod:`edge_plugins.server`). The reference, generated from this module and
:mod:`edge_plugins.ratelimit.schema`: docs/plugins/edge-rate-limit.md.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

from edge_plugins.guard import (
    FailurePolicy,
    answering_rejection,
    error_request,
    exit_request,
    guarded,
)
from edge_plugins.logs import EventIds, bind_event, safe_request_id
from edge_plugins.pdk_calls import PdkCalls
from edge_plugins.ratelimit.client_address import client_address_key
from edge_plugins.ratelimit.schema import DEPRECATED_LIMIT_BY, FIELDS, LimitBy
from edge_plugins.shared_context import SHARED_SUBJECT_KEY

if TYPE_CHECKING:
    from edge_plugins.ratelimit.config import RateLimitConfig
    from edge_plugins.ratelimit.enforcer import Enforcer

NAME = "edge-rate-limit"
version = importlib.metadata.version("edge-kong-plugins")
priority = 910

DEFAULT_METRICS_PORT = 9103
METRICS_MODULE = "edge_plugins.ratelimit.metrics"

# Kong plugin schema (kong/db/schema/metaschema.lua), from the one table of settings.
Schema = FIELDS.kong_schema()

_KEY = "kong.client.get_forwarded_ip"
PDK_CALLS = (
    PdkCalls("access", "admitted", (_KEY, "kong.response.set_headers")),
    PdkCalls("access", "admitted, `hide_client_headers` or `shadow`", (_KEY,)),
    PdkCalls(
        "access",
        "admitted, first request of its route in this process",
        (_KEY, "kong.router.get_route", "kong.response.set_headers"),
    ),
    PdkCalls(
        "access",
        "admitted, `limit_by: subject` and anonymous",
        ("kong.ctx.shared.get", _KEY, "kong.response.set_headers"),
    ),
    PdkCalls(
        "access",
        "rejected (429)",
        (_KEY, "kong.request.get_header", "kong.response.exit"),
    ),
    PdkCalls(
        "access",
        "Redis down, `on_store_failure: closed` (503)",
        (_KEY, "kong.response.error"),
    ),
)
FAILURE_BEHAVIOUR = (
    "A Redis failure (error, timeout, open circuit breaker) follows `on_store_failure`: "
    "`open` admits, `closed` answers 503 with `Retry-After` (`redis.breaker_reset_seconds`), "
    "`local` (the default) counts in this process at limit ÷ `expected_nodes`. A bug in "
    "deciding fails open (logged): a rate limiter must not take the API down. Once a request "
    "is decided to be rejected, a failure while answering still rejects it, with the "
    "decided status and `Retry-After`. A config that Kong accepts but the plugin cannot use "
    "answers 500 on every request, logged."
)

log = logging.getLogger("edge_plugins.edge_rate_limit")

# Metrics label of each scope ("route:<id>" → the route's name), looked up once per process.
_labels: dict[str, str] = {}
_labels_lock = threading.Lock()


class Plugin:
    """One instance per plugin config and Kong worker (plugin.lua)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # StartInstance: never raise for a schema-valid config (a raise here is Kong's 500
        # for every request); a config the core refuses answers 500 per request instead.
        self.failure_policy = FailurePolicy.CLOSED
        self.config: RateLimitConfig | None = None
        self.config_error: str | None = None
        self._enforcer: Enforcer | None = None
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
        configured = config.get("limit_by")
        if configured in DEPRECATED_LIMIT_BY:
            log.warning(
                "edge-rate-limit %s: limit_by %r is deprecated, use %r (same counters)",
                self.config.scope,
                configured,
                DEPRECATED_LIMIT_BY[configured].value,
            )

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
            # The only request header this plugin reads on every rejection: its lines from
            # here name the request (admitted requests read none: no id, no extra call).
            bind_event(EventIds(request_id=safe_request_id(request_id)))
            exit_request(
                kong,
                verdict.status,
                verdict.json_body(request_id),
                {**verdict.headers, "Content-Type": "application/json"},
            )

    @staticmethod
    def _client_key(kong: Any, config: RateLimitConfig) -> str:
        by = config.limit_by
        if by is LimitBy.SUBJECT:
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
        return client_address_key(kong.client.get_forwarded_ip(), config.ipv6_prefix)

    def _get_enforcer(self, kong: Any, config: RateLimitConfig) -> Enforcer:
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
