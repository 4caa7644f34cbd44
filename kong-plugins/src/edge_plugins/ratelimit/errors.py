"""What can go wrong in the edge-rate-limit core.

Every error is a configuration or programming error, refused before any request is decided:
a request over its limit is not an exception but a ``Decision`` with ``allowed=False``.
"""

from __future__ import annotations


class RateLimitError(Exception):
    """Base of every error raised by the edge-rate-limit core."""


class LimitConfigError(RateLimitError, ValueError):
    """A limit, cost or burst is invalid (e.g. a cost that could never fit in the limit)."""
