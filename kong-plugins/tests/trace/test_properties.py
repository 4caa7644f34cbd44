"""Property tests: hostile header values never break the parsers or the access plan."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_plugins.trace.access import plan_access
from edge_plugins.trace.config import TraceConfig
from edge_plugins.trace.traceparent import (
    InvalidTraceparent,
    format_traceparent,
    parse_traceparent,
)
from edge_plugins.trace.tracestate import MAX_LENGTH, InvalidTracestate, parse_tracestate

HEX = "0123456789abcdef"
ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
CONFIG = TraceConfig.from_kong({"accept_b3": True, "response_trace_context": True})


@given(st.text(max_size=120))
def test_traceparent_parses_or_says_why(value: str) -> None:
    try:
        parsed = parse_traceparent(value)
    except InvalidTraceparent as exc:
        assert exc.reason
    else:
        assert parsed.version != 0xFF and len(parsed.trace_id) == 32


@given(
    st.text(alphabet=HEX, min_size=32, max_size=32),
    st.text(alphabet=HEX, min_size=16, max_size=16),
    st.integers(0, 255),
)
def test_traceparent_round_trip(trace_id: str, span_id: str, flags: int) -> None:
    value = format_traceparent(trace_id, span_id, flags)
    try:
        parsed = parse_traceparent(value)
    except InvalidTraceparent as exc:
        assert exc.reason in ("trace_id_zero", "parent_id_zero")
    else:
        assert (parsed.trace_id, parsed.parent_id, parsed.flags) == (
            trace_id,
            span_id,
            flags & 0x03,
        )


@given(st.lists(ASCII, max_size=5))
def test_tracestate_parses_within_limits_or_is_dropped(values: list[str]) -> None:
    try:
        state = parse_tracestate(values)
    except InvalidTracestate as exc:
        assert exc.reason
    else:
        assert len(state.header()) <= MAX_LENGTH and len(state.members) <= 32
        assert parse_tracestate([state.header()]).members == state.members


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "traceparent",
                "tracestate",
                "b3",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-sampled",
                "x-request-id",
                "TraceParent",
            ]
        ),
        st.lists(ASCII, min_size=1, max_size=3),
    )
)
def test_access_plan_never_raises_and_always_propagates(headers: dict[str, list[str]]) -> None:
    plan = plan_access(CONFIG, headers)
    sent = parse_traceparent(plan.upstream_headers["traceparent"])  # type: ignore[arg-type]
    assert sent.parent_id == plan.context.span_id
    assert plan.response_headers["X-Request-ID"] == plan.upstream_headers["X-Request-ID"]
