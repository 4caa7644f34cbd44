"""A circuit breaker in front of the shared store, so an outage costs one timeout, not many.

Without it every request during a Redis outage would wait the full socket timeout before
failing. With it, ``failure_threshold`` consecutive failures *open* the breaker: callers
are refused at once (no socket touched) for ``reset_timeout`` seconds. Then it is
*half-open*: exactly one caller is let through as a probe while the others are still
refused; the probe's success closes the breaker, its failure reopens it for another
``reset_timeout``. So a dead Redis costs one timeout per ``reset_timeout``, not one per
request.

A probe whose caller never reports back (a bug, a killed greenlet) would leave the breaker
half-open forever; after ``reset_timeout`` without an answer another probe is allowed.

Every answer is reported with the permit its call was admitted with (``allow()``), and
counts only if the breaker is still in the state that admitted it: a call that started
before the breaker opened and answers once it is open or half-open, or a probe that was
given up for lost and answers after the next one started, is stale and changes nothing.
Without that, one late success from a Redis that has since gone down would close the
breaker, and every caller would pay a timeout again.

Thread- and greenlet-safe: state changes under one lock that is never held across I/O
(under gevent's monkey patching ``threading.Lock`` is a cooperative lock).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import NewType

# Which state of the breaker admitted a call: its generation when ``allow()`` answered.
Permit = NewType("Permit", int)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive failures open it; after ``reset_timeout`` one probe decides."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(failure_threshold, bool) or failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not reset_timeout > 0:
            raise ValueError("reset_timeout must be > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at = 0.0
        # Bumped by every change of state and every new probe: a permit of an older
        # generation is stale. Never 0, so that every permit is true.
        self._generation = 1

    @property
    def state(self) -> BreakerState:
        """The current state; reading it never starts a probe."""
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def allow(self) -> Permit | None:
        """May this caller use the store now? ``None`` if not; else the permit to report its
        answer with. In half-open, only the one probe may."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return Permit(self._generation)
            now = self._clock()
            if self._state is BreakerState.OPEN:
                if now - self._opened_at < self.reset_timeout:
                    return None
                self._state = BreakerState.HALF_OPEN
            # Half-open: a probe is in flight. Allow another only if it was lost.
            elif now - self._probe_started_at < self.reset_timeout:
                return None
            self._probe_started_at = now
            self._generation += 1
            return Permit(self._generation)

    def record_success(self, permit: Permit) -> None:
        """The store answered the call admitted with ``permit``: a probe's success closes
        the breaker, a closed breaker's success resets the count; a stale one does nothing."""
        with self._lock:
            if permit != self._generation:  # an open breaker's generation has no permit
                return
            if self._state is BreakerState.HALF_OPEN:
                self._generation += 1
            self._state = BreakerState.CLOSED
            self._failures = 0

    def record_failure(self, permit: Permit) -> bool:
        """The store failed the call admitted with ``permit``: count it (closed), or reopen
        after a failed probe (half-open); a stale one does nothing (a call that started
        before the breaker opened does not extend the open interval). Whether this failure
        opened the breaker."""
        with self._lock:
            if permit != self._generation:
                return False
            if self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures < self.failure_threshold:
                    return False
            self._open()
            return True

    def _open(self) -> None:
        self._generation += 1
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state!s}, threshold={self.failure_threshold}, "
            f"reset_timeout={self.reset_timeout})"
        )
