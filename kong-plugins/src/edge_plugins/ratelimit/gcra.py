"""GCRA (generic cell rate algorithm): a smooth rate with a burst, one float per key.

Definitions, for ``limit`` units per ``window_seconds`` and a ``burst``:

* emission interval ``T = window_seconds / limit``: the steady rate is one unit per ``T``;
* tolerance ``tau = burst * T``: how far ahead of real time the schedule may run;
* per key only the theoretical arrival time ``TAT`` is stored (when the key's schedule is
  next free; a fresh key has ``TAT = now``).

A request of ``cost`` units at ``now`` computes ``tat = max(TAT, now)`` and
``new_tat = tat + cost * T``; it is admitted iff ``new_tat - tau <= now`` (then
``TAT := new_tat``; the comparison tolerates float rounding of a billionth of ``T``).
So an idle key admits ``burst`` units at once and then exactly one unit per ``T``; in ANY
interval ``[a, b]`` at most ``burst + (b - a) / T`` units are admitted.
``burst = limit`` (the default) admits a full window's worth at once, like a token bucket of
``limit`` tokens refilled at ``limit / window``; a smaller burst smooths traffic further.

Decisions: ``limit`` is the burst (the most that fits at once), ``remaining`` how many more
units fit right now, ``reset_after`` when the key is fully idle again (``TAT - now``), and
``retry_after`` when this same request would fit (``new_tat - tau - now``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable

from edge_plugins.ratelimit.limits import Algorithm, Decision, Limit, delay_until

DEFAULT_MAX_KEYS = 100_000
_PRUNE_PER_CALL = 2
# T = window / limit is rarely exact in binary (60 / 7), so sums of T drift by ulps and an
# exact comparison would reject the last unit of a burst by 1e-13 s. Both the admission test
# and ``remaining`` tolerate a billionth of one emission interval, and never less than 10 µs:
# at epoch timestamps (~1.7e9 s) one ulp is already 2.4e-7 s.
_RATIO_SLACK = 1e-9
_TIME_SLACK = 1e-5


class Gcra:
    """GCRA state for one limit: the TAT of each key, behind one lock (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        burst: int | None = None,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.limit = Limit(limit, window_seconds, burst=burst)
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self.burst = self.limit.capacity
        self.emission_interval = self.limit.window_seconds / self.limit.limit
        self.tolerance = self.burst * self.emission_interval
        self._slack = max(_RATIO_SLACK * self.emission_interval, _TIME_SLACK)
        self._max_keys = max_keys
        self._tats: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self._now = -math.inf

    @classmethod
    def for_limit(cls, limit: Limit, *, max_keys: int = DEFAULT_MAX_KEYS) -> Gcra:
        gcra = cls(limit.limit, limit.window_seconds, limit.burst, max_keys=max_keys)
        gcra.limit = limit
        return gcra

    def take(self, key: Hashable, cost: int | None = None, *, now: float) -> Decision:
        """Admit ``cost`` units for ``key`` at ``now`` if they conform, consuming them."""
        return self._decide(key, cost, now, consume=True)

    def peek(self, key: Hashable, cost: int | None = None, *, now: float) -> Decision:
        """What ``take`` would decide, without consuming anything."""
        return self._decide(key, cost, now, consume=False)

    def _remaining(self, tat: float, now: float) -> int:
        ratio = (now + self.tolerance - tat) / self.emission_interval
        return max(0, min(self.burst, math.floor(ratio + self._slack / self.emission_interval)))

    def _decide(self, key: Hashable, cost: int | None, now: float, *, consume: bool) -> Decision:
        units = self.limit.units(cost, Algorithm.GCRA)
        with self._lock:
            # Time never goes backwards inside a store (threads may read the clock in one
            # order and take the lock in the other): a key pruned as idle at a later reading
            # must not come back fresh for an earlier one. ``peek`` neither prunes nor
            # advances this clock.
            now = max(now, self._now)
            if consume:
                self._now = now
                self._prune(now)
            stored = self._tats.get(key)
            tat = now if stored is None else max(stored, now)
            new_tat = tat + units * self.emission_interval
            allow_at = new_tat - self.tolerance
            if now >= allow_at - self._slack:
                if consume:
                    self._tats[key] = new_tat
                    self._tats.move_to_end(key)
                    while len(self._tats) > self._max_keys:
                        self._tats.popitem(last=False)
                return Decision(
                    True, self.burst, self._remaining(new_tat, now), delay_until(new_tat, now)
                )
            if stored is not None:
                self._tats.move_to_end(key)
            return Decision(
                False,
                self.burst,
                self._remaining(tat, now),
                delay_until(tat, now),
                delay_until(allow_at, now),
            )

    def _prune(self, now: float) -> None:
        # A key whose TAT has passed behaves exactly like a fresh key: dropping it is free.
        for _ in range(_PRUNE_PER_CALL):
            if not self._tats:
                return
            key, tat = next(iter(self._tats.items()))
            if tat > now:
                return
            del self._tats[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._tats)
