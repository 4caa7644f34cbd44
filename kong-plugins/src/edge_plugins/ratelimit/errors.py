"""What can go wrong in the edge-rate-limit core.

A request over its limit is not an exception but a ``Decision`` with ``allowed=False``.
``LimitConfigError`` is a configuration or programming error, refused before any request is
decided; ``StoreUnavailable`` means the shared store (Redis) could not decide this request,
and the caller applies its configured failure mode.
"""

from __future__ import annotations

from typing import Literal, get_args

StoreFailureReason = Literal["breaker_open", "timeout", "connection", "error"]
STORE_FAILURE_REASONS: frozenset[str] = frozenset(get_args(StoreFailureReason))


class RateLimitError(Exception):
    """Base of every error raised by the edge-rate-limit core."""


class LimitConfigError(RateLimitError, ValueError):
    """A limit, cost or burst is invalid (e.g. a cost that could never fit in the limit)."""


class StoreUnavailable(RateLimitError):
    """The shared store could not decide: down, slow, or breaker open.

    ``reason`` is one of ``breaker_open`` (refused without touching the network),
    ``timeout`` (connect or reply slower than the configured timeout), ``connection``
    (refused, reset, no connection available) or ``error`` (Redis answered with an error).
    """

    def __init__(self, reason: StoreFailureReason, detail: str = "") -> None:
        if reason not in STORE_FAILURE_REASONS:
            raise ValueError(f"unknown store failure reason {reason!r}")
        self.reason: str = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
