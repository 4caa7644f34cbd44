"""The ``tracestate`` header (W3C Trace Context Level 2, §tracestate Header).

What the gateway does with it, and why:

* several header fields are one list, joined with ``,`` (RFC 9110 §5.3);
* empty and whitespace-only members are allowed and skipped; spaces and tabs around
  members are ignored, so what we send is normalised (``a=1,b=2``);
* ``key = (lcalpha / DIGIT) 0*255 keychar`` with ``keychar = lcalpha / DIGIT / "_" / "-" /
  "*" / "/" / "@"``; ``value`` is 1-256 printable ASCII characters without ``,`` or ``=``
  and not ending in a space. One malformed member, or more than 32 members, makes the whole
  header unusable: it is dropped (:class:`InvalidTracestate`), as the W3C test suite expects;
* a repeated key is a sender's error; the spec lets us discard duplicates, and we keep the
  first (left-most, i.e. most recent) entry;
* we propagate at most 512 characters (the spec's SHOULD-propagate minimum). Over that,
  whole entries go: first entries longer than 128 characters, starting from the right, then
  entries from the right, as the spec's truncation guidance says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_MEMBERS = 32
MAX_LENGTH = 512
LARGE_ENTRY = 128

_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS = " \t"


class InvalidTracestate(ValueError):
    """The header is dropped; ``reason`` is ``member``, ``key``, ``value`` or
    ``too_many_members``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid tracestate: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TraceState:
    """A parsed list, ready to send; counts what was removed on the way."""

    members: tuple[tuple[str, str], ...]
    duplicates: int = 0
    truncated: int = 0

    def header(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.members)

    def __bool__(self) -> bool:
        return bool(self.members)


def parse_tracestate(values: Sequence[str]) -> TraceState:
    """Parse the header fields in order; raise :class:`InvalidTracestate` to drop them."""
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    for field in values:
        for raw in field.split(","):
            item = raw.strip(_OWS)
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidTracestate("member")
            if not _KEY.fullmatch(key):
                raise InvalidTracestate("key")
            if not _VALUE.fullmatch(value):
                raise InvalidTracestate("value")
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            members.append((key, value))
            if len(members) > MAX_MEMBERS:
                raise InvalidTracestate("too_many_members")
    kept = truncate(members)
    return TraceState(tuple(kept), duplicates=duplicates, truncated=len(members) - len(kept))


def _entry_length(member: tuple[str, str]) -> int:
    return len(member[0]) + 1 + len(member[1])


def _header_length(members: Sequence[tuple[str, str]]) -> int:
    return sum(_entry_length(m) for m in members) + max(len(members) - 1, 0)


def truncate(members: Sequence[tuple[str, str]], limit: int = MAX_LENGTH) -> list[tuple[str, str]]:
    """Whole entries removed until the header fits ``limit`` (see the module docstring)."""
    kept = list(members)
    while _header_length(kept) > limit:
        large = [i for i, m in enumerate(kept) if _entry_length(m) > LARGE_ENTRY]
        if not large:
            break
        del kept[large[-1]]
    while _header_length(kept) > limit:
        kept.pop()
    return kept
