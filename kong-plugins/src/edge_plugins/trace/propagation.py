"""Which incoming trace context the gateway continues, and the context it sends upstream.

Incoming (:func:`extract`), in this order:

1. ``trust_incoming_context: false`` is a trust boundary: every incoming trace header is
   ignored and ``tracestate`` is removed (W3C: a front gate "restarts the trace" and
   SHOULD clean up ``tracestate``). Untrusted clients then cannot pick our trace ids, force
   sampling, or smuggle vendor state to the upstreams.
2. A valid single ``traceparent`` (:mod:`.traceparent`); two or more are invalid.
3. Only if there is no valid ``traceparent`` and ``accept_b3`` is on: ``b3``, then the
   ``X-B3-*`` headers (:mod:`.b3`). Consumed B3 headers are removed upstream, so services
   behind the gateway see one context: ours, in W3C form.
4. ``tracestate`` only rides along with a valid ``traceparent`` (W3C: do not parse it
   otherwise); it is dropped with an invalid or missing one, or a B3 parent.

Outgoing (:func:`start_gateway_span`): a new span id for the gateway's server span; the
trace id, ``random`` flag and ``tracestate`` of the parent when there is one, else a new
random trace id with the ``random`` flag set; ``sampled`` from :mod:`.sampling`.

Problems found on the way are returned as ``(header, reason)`` pairs for the metrics; none
of them ever fails a request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge_plugins.trace import b3
from edge_plugins.trace.ids import new_span_id, new_trace_id
from edge_plugins.trace.sampling import RatioSampler
from edge_plugins.trace.traceparent import (
    RANDOM,
    SAMPLED,
    InvalidTraceparent,
    format_traceparent,
    parse_traceparent,
)
from edge_plugins.trace.tracestate import InvalidTracestate, TraceState, parse_tracestate

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_WANTED = frozenset({TRACEPARENT, TRACESTATE, *b3.ALL_HEADERS})

Problem = tuple[str, str]  # (header label, reason)


@dataclass(frozen=True, slots=True)
class ParentContext:
    """The caller's span, as far as we trust it."""

    trace_id: str
    span_id: str
    sampled: bool | None  # None: the caller deferred the decision (B3 without a state)
    random: bool
    source: str  # "w3c" or "b3"


@dataclass(frozen=True, slots=True)
class Extraction:
    parent: ParentContext | None
    tracestate: TraceState | None
    problems: tuple[Problem, ...] = ()
    clear: tuple[str, ...] = ()  # incoming headers to remove from the upstream request


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """The gateway's server span, as propagated upstream and recorded in the log phase."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    sampled: bool
    random: bool
    tracestate: str | None  # the header value to send, or None for none

    @property
    def flags(self) -> int:
        return (SAMPLED if self.sampled else 0) | (RANDOM if self.random else 0)

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.flags)


def pick_headers(
    headers: Mapping[str, Sequence[str] | str], names: Iterable[str]
) -> dict[str, list[str]]:
    """The named headers (lower-case) from Kong's multimap; tolerant of odd casing/values.

    ``kong.request.get_headers`` answers lower-case names with list values; a string value
    or a mixed-case name is normalised rather than trusted to never happen.
    """
    wanted = frozenset(names)
    picked: dict[str, list[str]] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname in wanted:
            values = [value] if isinstance(value, str) else [str(v) for v in value]
            picked.setdefault(lname, []).extend(values)
    return picked


def extract(
    headers: Mapping[str, Sequence[str] | str], *, trust: bool, accept_b3: bool
) -> Extraction:
    """The parent context and ``tracestate`` to continue (see the module docstring)."""
    picked = pick_headers(headers, _WANTED)
    present_b3 = tuple(name for name in b3.ALL_HEADERS if name in picked)
    consumed_b3 = present_b3 if accept_b3 else ()
    if not trust:
        clear = ((TRACESTATE,) if TRACESTATE in picked else ()) + consumed_b3
        return Extraction(parent=None, tracestate=None, clear=clear)

    problems: list[Problem] = []
    parent = _w3c_parent(picked.get(TRACEPARENT), problems)
    if parent is None and present_b3 and accept_b3:
        parent = _b3_parent(picked, problems)

    to_clear = list(consumed_b3)
    tracestate: TraceState | None = None
    incoming_state = picked.get(TRACESTATE)
    if incoming_state is not None:
        if parent is None or parent.source != "w3c":
            problems.append((TRACESTATE, "without_valid_traceparent"))
        else:
            try:
                tracestate = parse_tracestate(incoming_state)
            except InvalidTracestate as exc:
                problems.append((TRACESTATE, exc.reason))
            else:
                if tracestate.duplicates:
                    problems.append((TRACESTATE, "duplicate_key"))
                if tracestate.truncated:
                    problems.append((TRACESTATE, "truncated"))
        if not tracestate:
            tracestate = None
            to_clear.append(TRACESTATE)
    return Extraction(
        parent=parent, tracestate=tracestate, problems=tuple(problems), clear=tuple(to_clear)
    )


def _w3c_parent(values: list[str] | None, problems: list[Problem]) -> ParentContext | None:
    if values is None:
        return None
    if len(values) > 1:
        problems.append((TRACEPARENT, "duplicate"))
        return None
    try:
        parsed = parse_traceparent(values[0])
    except InvalidTraceparent as exc:
        problems.append((TRACEPARENT, exc.reason))
        return None
    return ParentContext(
        trace_id=parsed.trace_id,
        span_id=parsed.parent_id,
        sampled=parsed.sampled,
        random=parsed.random,
        source="w3c",
    )


def _b3_parent(picked: Mapping[str, list[str]], problems: list[Problem]) -> ParentContext | None:
    label = b3.SINGLE_HEADER if b3.SINGLE_HEADER in picked else "x-b3"
    try:
        if b3.SINGLE_HEADER in picked:
            values = picked[b3.SINGLE_HEADER]
            if len(values) > 1:
                raise b3.InvalidB3("duplicate")
            context = b3.parse_single(values[0])
        else:
            context = b3.parse_multi(picked)
    except b3.InvalidB3 as exc:
        problems.append((label, exc.reason))
        return None
    if context is None:
        return None
    # B3 says nothing about how the trace id was made: the random flag stays unset.
    return ParentContext(
        trace_id=context.trace_id,
        span_id=context.span_id,
        sampled=context.sampled,
        random=False,
        source="b3",
    )


def start_gateway_span(extraction: Extraction, sampler: RatioSampler) -> GatewayContext:
    """The gateway span: child of the trusted parent, or the root of a new random trace."""
    parent = extraction.parent
    span_id = new_span_id()
    if parent is None:
        trace_id = new_trace_id()
        return GatewayContext(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=None,
            sampled=sampler.decide(trace_id, None),
            random=True,
            tracestate=None,
        )
    state = extraction.tracestate.header() if extraction.tracestate else None
    return GatewayContext(
        trace_id=parent.trace_id,
        span_id=span_id,
        parent_span_id=parent.span_id,
        sampled=sampler.decide(parent.trace_id, parent.sampled),
        random=parent.random,
        tracestate=state,
    )
