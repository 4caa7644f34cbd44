"""Process-wide limiter state for the ``local`` policy.

Kong starts one plugin instance per worker (and per configuration change), all served by
the same plugin-server process. State kept on an instance would give each worker its own
counters and lose them on every reconfiguration, so the limiters live here, in a
module-level registry shared by every instance in the process (``local_limiter()``).

Limiters are keyed by ``(scope, algorithm, limit)``: a scope is the route or service the
plugin is attached to, so routes never share counters, and a changed limit starts fresh
state instead of reinterpreting old entries. Both the number of limiters and the number
of keys inside each are bounded; the least recently used are evicted first.

Several limits on one request are all-or-nothing: every limit is checked, and units are
consumed only if all of them admit, under one lock, so a request rejected by the hourly
limit does not also use up the per-minute one. Locks are never held across I/O, so under
gevent's monkey patching (as the plugin server runs) they never park a greenlet for long.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from edge_plugins.ratelimit.errors import LimitConfigError
from edge_plugins.ratelimit.gcra import Gcra
from edge_plugins.ratelimit.limits import Algorithm, Decision, Limit, Outcome
from edge_plugins.ratelimit.sliding_window import SlidingWindowLog

DEFAULT_MAX_LIMITERS = 1_024
DEFAULT_MAX_KEYS = 100_000


class _SlidingLimiter:
    __slots__ = ("limit", "log")

    def __init__(self, limit: Limit, max_keys: int) -> None:
        self.limit = limit
        self.log = SlidingWindowLog(max_keys)

    def peek(self, key: Hashable, cost: int, now: float) -> Decision:
        return self.log.peek(key, self.limit, cost, now=now)

    def take(self, key: Hashable, cost: int, now: float) -> Decision:
        return self.log.take(key, self.limit, cost, now=now)


class _GcraLimiter:
    __slots__ = ("gcra",)

    def __init__(self, limit: Limit, max_keys: int) -> None:
        self.gcra = Gcra.for_limit(limit, max_keys=max_keys)

    def peek(self, key: Hashable, cost: int, now: float) -> Decision:
        return self.gcra.peek(key, cost, now=now)

    def take(self, key: Hashable, cost: int, now: float) -> Decision:
        return self.gcra.take(key, cost, now=now)


class LocalLimiter:
    """Registry of per-(scope, algorithm, limit) limiters; thread-safe."""

    def __init__(
        self, *, max_limiters: int = DEFAULT_MAX_LIMITERS, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if max_limiters < 1 or max_keys < 1:
            raise ValueError("max_limiters and max_keys must be positive")
        self._max_limiters = max_limiters
        self._max_keys = max_keys
        self._limiters: OrderedDict[
            tuple[str, Algorithm, Limit], _SlidingLimiter | _GcraLimiter
        ] = OrderedDict()
        self._lock = threading.Lock()

    def take(
        self,
        scope: str,
        key: Hashable,
        limits: Sequence[Limit],
        *,
        algorithm: Algorithm | str = Algorithm.SLIDING_WINDOW,
        cost: int | None = None,
        now: float,
    ) -> Outcome:
        """Decide one request for ``key`` under every limit; consume only if all admit.

        ``cost`` overrides each limit's ``cost_default``.
        """
        if not limits:
            raise LimitConfigError("at least one limit is required")
        algo = Algorithm(algorithm)
        costs = [limit.units(cost, algo) for limit in limits]
        with self._lock:
            limiters = [self._limiter(scope, algo, limit) for limit in limits]
            checks = [lim.peek(key, units, now) for lim, units in zip(limiters, costs, strict=True)]
            if all(decision.allowed for decision in checks):
                checks = [
                    lim.take(key, units, now) for lim, units in zip(limiters, costs, strict=True)
                ]
                allowed = True
            else:
                allowed = False
        return Outcome(allowed, tuple(zip(limits, checks, strict=True)))

    def _limiter(self, scope: str, algo: Algorithm, limit: Limit) -> _SlidingLimiter | _GcraLimiter:
        ident = (scope, algo, limit)
        limiter = self._limiters.get(ident)
        if limiter is None:
            cls = _SlidingLimiter if algo is Algorithm.SLIDING_WINDOW else _GcraLimiter
            limiter = self._limiters[ident] = cls(limit, self._max_keys)
            while len(self._limiters) > self._max_limiters:
                self._limiters.popitem(last=False)
        else:
            self._limiters.move_to_end(ident)
        return limiter

    def clear(self) -> None:
        with self._lock:
            self._limiters.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._limiters)


_PROCESS_LIMITER = LocalLimiter()


def local_limiter() -> LocalLimiter:
    """The one registry of this process, shared by every plugin instance."""
    return _PROCESS_LIMITER
