"""Exact sliding-window log: never more than ``limit`` units in ANY interval of the window.

Fixed windows (Kong's bundled plugin) admit up to 2x the limit across a window boundary,
and the "sliding window counter" approximation still overshoots. The log keeps, per key,
the timestamp and cost of every admitted request still inside the window, so the check
is exact: a unit admitted at ``t`` counts against every request at ``now`` with
``now < t + window`` and leaves the window at ``t + window``.

Memory per key is bounded by ``limit`` entries (each entry costs at least one unit and
the entries in a log sum to at most ``limit``). Check and consume happen under one lock,
so concurrent requests can never both take the last unit.

A store is meant to be used with one ``Limit`` (the registry in ``local_store`` makes one
store per scope, algorithm and limit); keys idle for longer than their window are pruned,
and past ``max_keys`` the least recently used key is evicted.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Hashable

from edge_plugins.ratelimit.limits import Algorithm, Decision, Limit, delay_until

DEFAULT_MAX_KEYS = 100_000
# How many least-recently-used keys one call inspects for expiry (amortised O(1) pruning).
_PRUNE_PER_CALL = 2


class _Log:
    """Admitted ``(timestamp, cost)`` entries of one key, oldest first, and their sum."""

    __slots__ = ("entries", "used", "window")

    def __init__(self, window: float) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.used = 0
        self.window = window

    @classmethod
    def copy_of(cls, log: _Log | None, window: float) -> _Log:
        copy = cls(window)
        if log is not None:
            copy.entries.extend(log.entries)
            copy.used = log.used
        return copy

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and entries[0][0] + self.window <= now:
            self.used -= entries.popleft()[1]

    def idle(self, now: float) -> bool:
        return not self.entries or self.entries[-1][0] + self.window <= now


def _time_freed(log: _Log, units: int) -> float:
    """When at least ``units`` of the logged units will have left the window."""
    freed = 0
    for stamp, cost in log.entries:
        freed += cost
        if freed >= units:
            return stamp + log.window
    raise AssertionError("cannot free more units than are logged")


class SlidingWindowLog:
    """Per-key sliding-window logs behind one lock (thread-safe)."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._max_keys = max_keys
        self._logs: OrderedDict[Hashable, _Log] = OrderedDict()
        self._lock = threading.Lock()
        self._now = -math.inf

    def take(self, key: Hashable, limit: Limit, cost: int | None = None, *, now: float) -> Decision:
        """Admit ``cost`` units for ``key`` at ``now`` if they fit, consuming them; else reject."""
        return self._decide(key, limit, cost, now, consume=True)

    def peek(self, key: Hashable, limit: Limit, cost: int | None = None, *, now: float) -> Decision:
        """What ``take`` would decide, without consuming anything."""
        return self._decide(key, limit, cost, now, consume=False)

    def _decide(
        self, key: Hashable, limit: Limit, cost: int | None, now: float, *, consume: bool
    ) -> Decision:
        units = limit.units(cost, Algorithm.SLIDING_WINDOW)
        window = limit.window_seconds
        with self._lock:
            # Threads may read the clock in one order and take the lock in the other. Time
            # never goes backwards inside a store: a late reading counts as the newest one,
            # which keeps every log sorted and agrees with what pruning already dropped.
            now = max(now, self._now)
            if consume:
                self._now = now
                self._prune(now)
            log = self._logs.get(key)
            if not consume:
                # A peek may look ahead in time; it works on a copy so that nothing it
                # expires is missing for a later ``take`` at an earlier reading.
                log = _Log.copy_of(log, window)
            elif log is None:
                log = self._logs[key] = _Log(window)
                self._evict_over_capacity()
            else:
                self._logs.move_to_end(key)
                log.window = window
            log.expire(now)
            if log.used + units <= limit.limit:
                if consume:
                    log.entries.append((now, units))
                    log.used += units
                    oldest = log.entries[0][0]
                    used = log.used
                else:
                    oldest = log.entries[0][0] if log.entries else now
                    used = log.used + units
                return Decision(
                    True, limit.limit, limit.limit - used, delay_until(oldest + window, now)
                )
            # Walk from the oldest entry until enough units would have left the window.
            retry_at = _time_freed(log, log.used + units - limit.limit)
            return Decision(
                False,
                limit.limit,
                limit.limit - log.used,
                delay_until(log.entries[0][0] + window, now),
                delay_until(retry_at, now),
            )

    def _prune(self, now: float) -> None:
        for _ in range(_PRUNE_PER_CALL):
            if not self._logs:
                return
            key, log = next(iter(self._logs.items()))
            if not log.idle(now):
                return
            del self._logs[key]

    def _evict_over_capacity(self) -> None:
        # Called with the newest key already at the end: only older keys are dropped.
        while len(self._logs) > self._max_keys:
            self._logs.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._logs)
