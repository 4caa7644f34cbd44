"""A limit (how many units per how long) and a decision (what one request was told).

Seconds are floats throughout so the algorithms stay exact under a fake clock; only header
rendering rounds, and always up, so a client that obeys the headers is never rejected.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from edge_plugins.ratelimit.errors import LimitConfigError


class Algorithm(enum.StrEnum):
    SLIDING_WINDOW = "sliding_window"  # exact log: never more than limit in any window
    GCRA = "gcra"  # smooth rate with a burst


#: Named periods accepted in configuration, in seconds (Kong's bundled plugin uses the same).
PERIODS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass; ``True`` as a limit is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LimitConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` units per ``window_seconds``; a request costs ``cost_default`` units.

    ``burst`` is only read by GCRA (how many units may arrive at once; ``None`` = ``limit``).
    """

    limit: int
    window_seconds: float
    cost_default: int = 1
    burst: int | None = None

    def __post_init__(self) -> None:
        _positive_int("limit", self.limit)
        # Limits are built from plugin config values, whatever their annotations say.
        window: object = self.window_seconds
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not math.isfinite(window)
            or window <= 0
        ):
            raise LimitConfigError(f"window_seconds must be a finite number > 0, got {window!r}")
        object.__setattr__(self, "window_seconds", float(window))
        _positive_int("cost_default", self.cost_default)
        if self.burst is not None:
            _positive_int("burst", self.burst)
        # The default cost must fit whichever algorithm the limit is used with.
        self.check_cost(self.cost_default, min(self.limit, self.capacity))

    @classmethod
    def per(
        cls, period: str, limit: int, *, cost_default: int = 1, burst: int | None = None
    ) -> Limit:
        """``Limit.per("minute", 5)``: a limit over a named period (second, minute, hour, day)."""
        try:
            seconds = PERIODS[period]
        except KeyError:
            raise LimitConfigError(
                f"unknown period {period!r}; expected one of {', '.join(PERIODS)}"
            ) from None
        return cls(limit, seconds, cost_default=cost_default, burst=burst)

    @property
    def capacity(self) -> int:
        """Most units that can ever be admitted at one instant (``burst`` under GCRA)."""
        return self.limit if self.burst is None else self.burst

    @property
    def period(self) -> str | None:
        """The named period this window is exactly equal to, if any."""
        for name, seconds in PERIODS.items():
            if self.window_seconds == seconds:
                return name
        return None

    @property
    def label(self) -> str:
        """A short stable name: the period name, else the window in seconds (``"90s"``)."""
        return self.period or f"{self.window_seconds:g}s"

    def ceiling(self, algorithm: Algorithm | str) -> int:
        """The most units one request may take at once: ``burst`` under GCRA, else ``limit``."""
        return self.capacity if Algorithm(algorithm) is Algorithm.GCRA else self.limit

    def units(self, cost: int | None, algorithm: Algorithm | str) -> int:
        """The units one request takes (``cost``, default ``cost_default``), checked to fit."""
        return self.check_cost(self.cost_default if cost is None else cost, self.ceiling(algorithm))

    def check_cost(self, cost: object, capacity: int | None = None) -> int:
        """Refuse a cost that is not a positive integer or could never fit.

        ``capacity`` is the most one request may take at once: ``limit`` for the sliding
        window (the default), ``burst`` for GCRA. Such a request would be rejected forever
        with no meaningful ``Retry-After``, so it is a configuration error, not a rejection.
        """
        _positive_int("cost", cost)
        assert isinstance(cost, int)
        most = self.limit if capacity is None else capacity
        if cost > most:
            raise LimitConfigError(f"cost {cost} can never fit in {most} units")
        return cost


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request against one limit.

    ``remaining`` is the units still available after this request; ``reset_after`` the
    seconds until capacity starts coming back (sliding window: the oldest admitted unit
    leaves the window; GCRA: the bucket is full again); ``retry_after`` is set only on a
    rejection: the seconds after which the same request would be admitted.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.allowed != (self.retry_after is None):
            raise ValueError("retry_after is set exactly when the request is rejected")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one request under all of its limits, in configuration order."""

    allowed: bool
    decisions: tuple[tuple[Limit, Decision], ...]

    @property
    def most_restrictive(self) -> tuple[Limit, Decision]:
        return most_restrictive(self.decisions)


def delay_until(deadline: float, now: float) -> float:
    """The smallest float ``d >= 0`` with ``now + d >= deadline``.

    ``deadline - now`` can round so that ``now + (deadline - now) < deadline``; nudging up
    by ulps guarantees that a client waiting exactly the returned delay is admitted.
    """
    if deadline <= now:
        return 0.0
    delay = deadline - now
    while now + delay < deadline:
        delay = math.nextafter(delay, math.inf)
    return delay


def most_restrictive(pairs: Iterable[tuple[Limit, Decision]]) -> tuple[Limit, Decision]:
    """The pair that drives ``RateLimit`` / ``Retry-After`` when several limits apply.

    A rejection beats any admission, and among rejections the longest wait wins (the client
    must wait for all of them); among admissions the fewest remaining, then the latest reset.
    """
    items = list(pairs)
    if not items:
        raise ValueError("no decisions")

    def key(pair: tuple[Limit, Decision]) -> tuple[int, float, float]:
        decision = pair[1]
        if not decision.allowed:
            return (0, -(decision.retry_after or 0.0), -decision.reset_after)
        return (1, decision.remaining, -decision.reset_after)

    return min(items, key=key)
