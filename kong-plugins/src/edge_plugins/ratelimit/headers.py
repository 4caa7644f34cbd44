"""Response headers for rate-limit decisions: IETF draft-11 fields and Kong's legacy ones.

IETF draft-ietf-httpapi-ratelimit-headers-11 defines two Structured Fields (RFC 9651),
both Lists of Items whose value is the policy name (an sf-string). Exactly what we emit:

* ``RateLimit-Policy``: every configured limit, in configuration order, as
  ``"<name>";q=<limit>;w=<window>``, e.g. ``"minute";q=5;w=60, "hour";q=100;w=3600``.
  ``q`` is the quota in units (requests unless costs are configured; ``qu`` is omitted so
  the default unit "request" applies), ``w`` the window in whole seconds (rounded up).
* ``RateLimit``: the most restrictive limit only, as ``"<name>";r=<remaining>;t=<reset>``,
  e.g. ``"minute";r=2;t=40``; ``t`` is ``reset_after`` rounded up to whole seconds.

No ``pk`` (partition key) is emitted: it would reveal how clients are keyed.

Kong-compatible fields, as its bundled rate-limiting plugin sends them:
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` for the most restrictive
limit, and ``X-RateLimit-Limit-<Period>`` / ``X-RateLimit-Remaining-<Period>`` for every
limit whose window is a named period (``Second``, ``Minute``, ``Hour``, ``Day``; other
windows have no Kong name and get no ``X-`` pair). On a rejection, ``Retry-After`` carries
the longest wait among the rejecting limits in integer seconds, rounded UP (at least 1), so
a client that waits that long is admitted.

Policy names are the limit's label (``"minute"``, ``"90s"``); when two limits share a label
the quota is appended (``"minute-5"``), then a position if still ambiguous.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence

from edge_plugins.ratelimit.limits import Decision, Limit, most_restrictive


def _seconds_up(seconds: float) -> int:
    return max(0, math.ceil(seconds))


@functools.lru_cache(maxsize=256)
def _policies(limits: tuple[Limit, ...]) -> tuple[tuple[str, ...], str]:
    """The limits' names and their ``RateLimit-Policy`` value: the same on every request
    of a configuration, so built once per set of limits, not per decision."""
    names = [limit.label for limit in limits]
    counts = Counter(names)
    names = [
        f"{name}-{limit.limit}" if counts[name] > 1 else name
        for name, limit in zip(names, limits, strict=True)
    ]
    counts = Counter(names)
    distinct = tuple(
        f"{name}-{index}" if counts[name] > 1 else name for index, name in enumerate(names, start=1)
    )
    policy = ", ".join(
        f'"{name}";q={limit.limit};w={max(1, math.ceil(limit.window_seconds))}'
        for name, limit in zip(distinct, limits, strict=True)
    )
    return distinct, policy


def policy_names(limits: Sequence[Limit]) -> list[str]:
    """One distinct sf-string-safe name per limit (labels are ``[a-z0-9.-]`` only)."""
    return list(_policies(tuple(limits))[0])


def ratelimit_policy(limits: Sequence[Limit]) -> str:
    """The ``RateLimit-Policy`` field value for these limits."""
    return _policies(tuple(limits))[1]


def ratelimit(name: str, decision: Decision) -> str:
    """The ``RateLimit`` field value for one policy's decision."""
    return f'"{name}";r={max(0, decision.remaining)};t={_seconds_up(decision.reset_after)}'


def retry_after(pairs: Sequence[tuple[Limit, Decision]]) -> str | None:
    """``Retry-After`` (integer seconds, rounded up, >= 1), or ``None`` when nothing rejected."""
    waits = [
        decision.retry_after
        for _, decision in pairs
        if not decision.allowed and decision.retry_after is not None
    ]
    if not waits:
        return None
    return str(max(1, math.ceil(max(waits))))


def rate_limit_headers(
    pairs: Sequence[tuple[Limit, Decision]], *, ietf: bool = True, kong: bool = True
) -> dict[str, str]:
    """All headers for one request decided under ``pairs`` (limits in configuration order).

    ``Retry-After`` is included whenever a limit rejected, whatever ``ietf``/``kong`` say:
    it belongs to the 429, not to the informational headers a route may hide.
    """
    if not pairs:
        raise ValueError("no decisions")
    names, policy = _policies(tuple(limit for limit, _ in pairs))
    tight_pair = most_restrictive(pairs)
    tight = tight_pair[1]
    tight_name = next(name for name, pair in zip(names, pairs, strict=True) if pair is tight_pair)
    headers: dict[str, str] = {}
    if ietf:
        headers["RateLimit-Policy"] = policy
        headers["RateLimit"] = ratelimit(tight_name, tight)
    if kong:
        headers["RateLimit-Limit"] = str(tight.limit)
        headers["RateLimit-Remaining"] = str(max(0, tight.remaining))
        headers["RateLimit-Reset"] = str(_seconds_up(tight.reset_after))
        shown: dict[str, Decision] = {}
        for limit, decision in pairs:
            # Two limits over the same period share one Kong header: show the tighter.
            if limit.period is not None and (
                limit.period not in shown or decision.remaining < shown[limit.period].remaining
            ):
                shown[limit.period] = decision
        for period, decision in shown.items():
            suffix = period.capitalize()
            headers[f"X-RateLimit-Limit-{suffix}"] = str(decision.limit)
            headers[f"X-RateLimit-Remaining-{suffix}"] = str(max(0, decision.remaining))
    wait = retry_after(pairs)
    if wait is not None:
        headers["Retry-After"] = wait
    return headers
