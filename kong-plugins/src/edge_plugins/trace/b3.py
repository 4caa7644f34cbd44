"""Zipkin B3 propagation, read only (github.com/openzipkin/b3-propagation).

Accepted when the route opts in (``accept_b3``) so that B3-instrumented clients keep their
trace; the gateway always sends W3C ``traceparent`` on. Two encodings:

* single header ``b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]``, or only
  ``{SamplingState}`` (a bare decision without ids, which starts no trace here);
* multiple headers ``X-B3-TraceId``, ``X-B3-SpanId``, ``X-B3-ParentSpanId``,
  ``X-B3-Sampled`` (``1``/``0``, legacy ``true``/``false``), ``X-B3-Flags`` (``1`` = debug).

Ids are lower-case hex: a trace id of 16 or 32 characters (a 64-bit id is left-padded with
zeros to W3C's 128 bits, as OpenTelemetry does), a span id of 16; all-zero ids are invalid.
``d`` (debug) means sampled. A missing sampling state defers the decision to us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_plugins.trace.ids import INVALID_SPAN_ID, INVALID_TRACE_ID

SINGLE_HEADER = "b3"
TRACE_ID_HEADER = "x-b3-traceid"
SPAN_ID_HEADER = "x-b3-spanid"
PARENT_SPAN_ID_HEADER = "x-b3-parentspanid"
SAMPLED_HEADER = "x-b3-sampled"
FLAGS_HEADER = "x-b3-flags"
MULTI_HEADERS = (
    TRACE_ID_HEADER,
    SPAN_ID_HEADER,
    PARENT_SPAN_ID_HEADER,
    SAMPLED_HEADER,
    FLAGS_HEADER,
)
ALL_HEADERS = (SINGLE_HEADER, *MULTI_HEADERS)

_LOWER_HEX = frozenset("0123456789abcdef")
_SINGLE_SAMPLING = {"1": True, "d": True, "0": False}
_MULTI_SAMPLED = {"1": True, "true": True, "0": False, "false": False}


class InvalidB3(ValueError):
    """The B3 headers cannot be used; ``reason`` names the metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid b3: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class B3Context:
    trace_id: str  # 32 lower-case hex (64-bit ids left-padded)
    span_id: str
    sampled: bool | None  # None: the caller deferred the decision


def _hex(text: str, lengths: tuple[int, ...]) -> bool:
    return len(text) in lengths and not set(text) - _LOWER_HEX


def _trace_id(text: str) -> str:
    if not _hex(text, (16, 32)):
        raise InvalidB3("trace_id")
    trace_id = text.rjust(32, "0")
    if trace_id == INVALID_TRACE_ID:
        raise InvalidB3("trace_id_zero")
    return trace_id


def _span_id(text: str, reason: str = "span_id") -> str:
    if not _hex(text, (16,)):
        raise InvalidB3(reason)
    if text == INVALID_SPAN_ID:
        raise InvalidB3(f"{reason}_zero")
    return text


def parse_single(value: str) -> B3Context | None:
    """The ``b3`` header; ``None`` for a bare sampling decision (no ids, no parent)."""
    parts = value.strip(" \t").split("-")
    if len(parts) == 1:
        if parts[0] in _SINGLE_SAMPLING:
            return None
        raise InvalidB3("format")
    if len(parts) > 4:
        raise InvalidB3("format")
    trace_id, span_id = _trace_id(parts[0]), _span_id(parts[1])
    sampled = None
    if len(parts) >= 3:
        if parts[2] not in _SINGLE_SAMPLING:
            raise InvalidB3("sampled")
        sampled = _SINGLE_SAMPLING[parts[2]]
    if len(parts) == 4:
        _span_id(parts[3], "parent_span_id")
    return B3Context(trace_id=trace_id, span_id=span_id, sampled=sampled)


def _one(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidB3("duplicate")
    return values[0].strip(" \t")


def parse_multi(headers: Mapping[str, Sequence[str]]) -> B3Context | None:
    """The ``X-B3-*`` headers (lower-case names); ``None`` when they carry no ids."""
    trace_id, span_id = _one(headers, TRACE_ID_HEADER), _one(headers, SPAN_ID_HEADER)
    sampled_text, flags = _one(headers, SAMPLED_HEADER), _one(headers, FLAGS_HEADER)
    parent = _one(headers, PARENT_SPAN_ID_HEADER)
    if trace_id is None and span_id is None:
        return None
    if trace_id is None or span_id is None:
        raise InvalidB3("format")
    context_trace_id, context_span_id = _trace_id(trace_id), _span_id(span_id)
    if parent is not None:
        _span_id(parent, "parent_span_id")
    sampled: bool | None = None
    if sampled_text is not None:
        if sampled_text.lower() not in _MULTI_SAMPLED:
            raise InvalidB3("sampled")
        sampled = _MULTI_SAMPLED[sampled_text.lower()]
    if flags is not None:
        if flags not in ("0", "1"):
            raise InvalidB3("flags")
        if flags == "1":
            sampled = True  # debug implies accept
    return B3Context(trace_id=context_trace_id, span_id=context_span_id, sampled=sampled)
