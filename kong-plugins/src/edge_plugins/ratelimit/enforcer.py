"""One request's rate-limit verdict: which store decides, what the client is told.

PDK-free: the Kong entry reads the client key, hands it to :meth:`Enforcer.decide` and
writes the verdict back. Everything the configuration says about *how* to decide lives
here — the policy (process-local or Redis counters), what a Redis failure turns into
(admit, 503, or per-node counters at ``limit ÷ expected_nodes``), shadow mode, and which
headers the client sees. The 429 body is built by :mod:`edge_plugins.responses`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_plugins.ratelimit import metrics
from edge_plugins.ratelimit.config import RateLimitConfig
from edge_plugins.ratelimit.errors import StoreUnavailable
from edge_plugins.ratelimit.headers import policy_names, rate_limit_headers
from edge_plugins.ratelimit.limits import Outcome
from edge_plugins.ratelimit.local_store import LocalLimiter, local_limiter
from edge_plugins.ratelimit.redis_store import RedisLimiter, redis_limiter_for
from edge_plugins.ratelimit.schema import Policy, StoreFailure
from edge_plugins.responses import json_with_request_id, quota_exceeded_body

# Fallback counters are kept apart from a ``local`` policy's, whatever the scope.
FALLBACK_SCOPE_PREFIX = "fallback:"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the entry does: admit (status 200) or end the request with ``status``.

    ``headers`` go on the response either way (empty when hidden or in shadow mode);
    ``body`` is the JSON for a 429-style rejection (the entry adds ``request_id``); a 503
    has no body of ours: Kong's own error body (with the request id) is used.
    """

    status: int
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    @property
    def admitted(self) -> bool:
        return self.status == 200

    @property
    def fallback_headers(self) -> dict[str, str]:
        """What a rejection keeps when its full answer cannot be sent: ``Retry-After``."""
        retry_after = self.headers.get("Retry-After")
        return {"Retry-After": retry_after} if retry_after else {}

    def json_body(self, request_id: str | None) -> str:
        """The rejection body as JSON, with ``request_id`` when it is well formed."""
        if self.body is None:
            raise ValueError(f"a {self.status} verdict has no body of ours")
        return json_with_request_id(self.body, request_id)


class Enforcer:
    """Decides requests for one plugin configuration; cheap to build, safe to share."""

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        route_label: str = "global",
        local: LocalLimiter | None = None,
        redis: RedisLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.route_label = route_label
        self._local = local if local is not None else local_limiter()
        self._clock = clock
        self._redis = redis
        if redis is None and config.policy is Policy.REDIS and config.redis is not None:
            self._redis = redis_limiter_for(
                config.redis, observe_latency=metrics.observe_store_seconds
            )
        self._store_label = config.redis.address if config.redis is not None else ""
        self._names = policy_names(config.limits)

    def decide(self, client_key: str) -> Verdict:
        config = self.config
        outcome_label: str | None = None
        outcome: Outcome | None  # None: the store failed and there is no local fallback
        if self._redis is not None:
            try:
                outcome = self._redis.take(
                    config.scope, client_key, config.limits, algorithm=config.algorithm
                )
            except StoreUnavailable:
                outcome_label = f"store_failure_{config.on_store_failure}"
                outcome = self._on_store_failure(client_key)
            finally:
                metrics.set_breaker_state(self._store_label, str(self._redis.breaker_state))
            if outcome is None:
                return self._finish(self._store_failed_verdict(outcome_label))
        else:
            outcome = self._local.take(
                config.scope,
                client_key,
                config.limits,
                algorithm=config.algorithm,
                now=self._clock(),
            )
        return self._finish(self._verdict(outcome, outcome_label))

    def _on_store_failure(self, client_key: str) -> Outcome | None:
        config = self.config
        if config.on_store_failure is not StoreFailure.LOCAL:
            return None
        return self._local.take(
            FALLBACK_SCOPE_PREFIX + config.scope,
            client_key,
            config.fallback_limits,
            algorithm=config.algorithm,
            now=self._clock(),
        )

    def _store_failed_verdict(self, outcome_label: str | None) -> Verdict:
        assert outcome_label is not None
        if self.config.on_store_failure is StoreFailure.OPEN:
            return Verdict(200, outcome_label)
        # closed: the breaker is open for up to breaker_reset_seconds; ask the client to
        # come back after that rather than hammering a gateway that cannot decide.
        assert self.config.redis is not None
        wait = max(1, math.ceil(self.config.redis.breaker_reset_seconds))
        return Verdict(503, outcome_label, {"Retry-After": str(wait)})

    def _verdict(self, outcome: Outcome, outcome_label: str | None) -> Verdict:
        config = self.config
        pairs = outcome.decisions
        if outcome.allowed:
            _, decision = outcome.most_restrictive
            if decision.limit - decision.remaining >= metrics.NEAR_LIMIT_RATIO * decision.limit:
                metrics.record_near_limit(self.route_label)
            headers = (
                {}
                if config.shadow or config.hide_client_headers
                else rate_limit_headers(pairs, ietf=config.ietf_headers, kong=config.kong_headers)
            )
            return Verdict(200, outcome_label or "allowed", headers)
        if config.shadow:
            return Verdict(200, outcome_label or "shadow_rejected")
        visible = not config.hide_client_headers
        headers = rate_limit_headers(
            pairs, ietf=visible and config.ietf_headers, kong=visible and config.kong_headers
        )
        violated = [
            name
            for name, (_, decision) in zip(self._names, pairs, strict=True)
            if not decision.allowed
        ]
        body = quota_exceeded_body(config.error_code, config.error_message, violated)
        return Verdict(config.error_code, outcome_label or "rejected", headers, body)

    def _finish(self, verdict: Verdict) -> Verdict:
        metrics.record_decision(self.route_label, verdict.outcome)
        return verdict
