"""The ``traceparent`` header, exactly as W3C Trace Context (Level 2) defines it.

``version "-" trace-id "-" parent-id "-" trace-flags``, all lower-case hex:

* version ``00``: exactly 55 characters; anything after the flags (``…-01-extra``,
  ``…-01.``) makes it invalid;
* a higher version is parsed forward-compatibly: at least 55 characters, the first four
  fields in their version-00 places, and the flags either end the value or are followed by
  ``-`` (later fields are never interpreted);
* version ``ff``, upper-case or non-hex characters, wrong field lengths and all-zero ids are
  invalid, and the receiver restarts the trace.

Only HTTP's optional whitespace (space, tab) around the whole value is tolerated: the header
grammar has no other place for it. Several ``traceparent`` headers are invalid as a whole
(the W3C test suite expects a new trace id); :mod:`.propagation` checks that, as it sees the
header list. Failures raise :class:`InvalidTraceparent` with a short ``reason`` that names
the metric label.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_plugins.trace.ids import INVALID_SPAN_ID, INVALID_TRACE_ID

SAMPLED = 0x01  # trace-flags bit 0: the caller may have recorded trace data
RANDOM = 0x02  # trace-flags bit 1 (Level 2): the right-most 7 bytes of trace-id are random
KNOWN_FLAGS = SAMPLED | RANDOM  # other bits are reserved: we always send them as zero

HEADER_LENGTH_V00 = 55
_LOWER_HEX = frozenset("0123456789abcdef")
_OWS = " \t"


class InvalidTraceparent(ValueError):
    """The header cannot be used; ``reason`` is one of ``empty``, ``version``,
    ``version_ff``, ``length``, ``format``, ``trace_id``, ``trace_id_zero``, ``parent_id``,
    ``parent_id_zero``, ``flags``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid traceparent: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid incoming ``traceparent`` (ids as lower-case hex)."""

    version: int
    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    @property
    def random(self) -> bool:
        return bool(self.flags & RANDOM)


def _lower_hex(text: str) -> bool:
    return bool(text) and not set(text) - _LOWER_HEX


def parse_traceparent(value: str) -> TraceParent:
    """Parse one header value; raise :class:`InvalidTraceparent` if the spec says ignore it."""
    value = value.strip(_OWS)
    if not value:
        raise InvalidTraceparent("empty")
    if len(value) < 3 or not _lower_hex(value[:2]) or value[2] != "-":
        raise InvalidTraceparent("version")
    version = int(value[:2], 16)
    if version == 0xFF:
        raise InvalidTraceparent("version_ff")
    if version == 0 and len(value) != HEADER_LENGTH_V00:
        raise InvalidTraceparent("length")
    if len(value) < HEADER_LENGTH_V00:
        raise InvalidTraceparent("length")
    if value[35] != "-" or value[52] != "-":
        raise InvalidTraceparent("format")
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not _lower_hex(trace_id):
        raise InvalidTraceparent("trace_id")
    if not _lower_hex(parent_id):
        raise InvalidTraceparent("parent_id")
    if not _lower_hex(flags):
        raise InvalidTraceparent("flags")
    if len(value) > HEADER_LENGTH_V00 and value[HEADER_LENGTH_V00] != "-":
        # a higher version's flags must end the value or be followed by "-"
        raise InvalidTraceparent("format")
    if trace_id == INVALID_TRACE_ID:
        raise InvalidTraceparent("trace_id_zero")
    if parent_id == INVALID_SPAN_ID:
        raise InvalidTraceparent("parent_id_zero")
    return TraceParent(
        version=version, trace_id=trace_id, parent_id=parent_id, flags=int(flags, 16)
    )


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """A version-00 value (the highest version we know, as the spec requires on output)."""
    return f"00-{trace_id}-{span_id}-{flags & KNOWN_FLAGS:02x}"
