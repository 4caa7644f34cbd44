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

Thread- and greenlet-safe: state changes under one lock that is never held across I/O
(under gevent's monkey patching ``threading.Lock`` is a cooperative lock).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable


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

    @property
    def state(self) -> BreakerState:
        """The current state; reading it never starts a probe."""
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """May this caller use the store now? In half-open, only the one probe may."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            now = self._clock()
            if self._state is BreakerState.OPEN:
                if now - self._opened_at < self.reset_timeout:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_started_at = now
                return True
            # Half-open: a probe is in flight. Allow another only if it was lost.
            if now - self._probe_started_at < self.reset_timeout:
                return False
            self._probe_started_at = now
            return True

    def record_success(self) -> None:
        """The store answered: it is healthy, whatever state we were in."""
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0

    def record_failure(self) -> None:
        """The store failed: count it (closed), or reopen after a failed probe (half-open).

        Failures reported while already open come from calls that started before it opened;
        they do not extend the open interval.
        """
        with self._lock:
            if self._state is BreakerState.OPEN:
                return
            if self._state is BreakerState.HALF_OPEN:
                self._open()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state!s}, threshold={self.failure_threshold}, "
            f"reset_timeout={self.reset_timeout})"
        )
