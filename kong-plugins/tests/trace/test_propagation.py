"""Which incoming context is continued, and what goes upstream (edge_plugins.trace.propagation
and the access plan)."""

from __future__ import annotations

import re

import pytest

from edge_plugins.trace.access import plan_access
from edge_plugins.trace.config import TraceConfig
from edge_plugins.trace.propagation import extract, start_gateway_span
from edge_plugins.trace.sampling import RatioSampler
from edge_plugins.trace.traceparent import parse_traceparent

TRACE_ID = "12345678901234567890123456789012"
SPAN_ID = "1234567890123456"
B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SPAN = "e457b5a2e4d86bd1"
ALWAYS = RatioSampler.of(1.0)
NEVER = RatioSampler.of(0.0)


def _tp(flags: str = "01", trace_id: str = TRACE_ID) -> str:
    return f"00-{trace_id}-{SPAN_ID}-{flags}"


def test_valid_parent_is_continued_with_a_new_span_id() -> None:
    extraction = extract({"traceparent": [_tp("01")]}, trust=True, accept_b3=False)
    context = start_gateway_span(extraction, NEVER)
    assert (context.trace_id, context.parent_span_id) == (TRACE_ID, SPAN_ID)
    assert context.span_id != SPAN_ID and re.fullmatch(r"[0-9a-f]{16}", context.span_id)
    assert context.sampled  # the parent's decision beats sample_ratio 0
    assert not context.random  # the random flag is the parent's (unset here)
    out = parse_traceparent(context.traceparent)
    assert (out.trace_id, out.parent_id, out.flags) == (TRACE_ID, context.span_id, 0x01)


def test_parent_not_sampled_stays_not_sampled() -> None:
    context = start_gateway_span(
        extract({"traceparent": [_tp("00")]}, trust=True, accept_b3=False), ALWAYS
    )
    assert not context.sampled and context.traceparent.endswith("-00")


def test_random_flag_is_kept_when_continuing() -> None:
    context = start_gateway_span(
        extract({"traceparent": [_tp("03")]}, trust=True, accept_b3=False), ALWAYS
    )
    assert context.random and context.traceparent.endswith("-03")


def test_new_trace_is_random_and_sampled_by_ratio() -> None:
    context = start_gateway_span(extract({}, trust=True, accept_b3=False), ALWAYS)
    assert context.parent_span_id is None and context.random and context.sampled
    assert context.traceparent.endswith("-03")
    assert start_gateway_span(extract({}, trust=True, accept_b3=False), NEVER).flags == 0x02


def test_duplicate_traceparent_restarts_the_trace() -> None:
    extraction = extract(
        {"traceparent": [_tp(), _tp(trace_id="1" * 32)]}, trust=True, accept_b3=False
    )
    assert extraction.parent is None
    assert extraction.problems == (("traceparent", "duplicate"),)
    context = start_gateway_span(extraction, ALWAYS)
    assert context.trace_id not in (TRACE_ID, "1" * 32)


@pytest.mark.parametrize("name", ["traceparent", "TraceParent", "TRACEPARENT"])
def test_header_name_casing(name: str) -> None:
    extraction = extract({name: [_tp()]}, trust=True, accept_b3=False)
    assert extraction.parent is not None and extraction.parent.trace_id == TRACE_ID


@pytest.mark.parametrize("name", ["trace-parent", "trace_parent"])
def test_other_header_names_are_not_traceparent(name: str) -> None:
    assert extract({name: [_tp()]}, trust=True, accept_b3=False).parent is None


def test_string_header_values_are_tolerated() -> None:
    extraction = extract({"traceparent": _tp(), "tracestate": "a=1"}, trust=True, accept_b3=False)
    assert extraction.parent is not None and extraction.tracestate is not None


def test_tracestate_rides_along_with_a_valid_traceparent() -> None:
    extraction = extract(
        {"traceparent": [_tp()], "tracestate": ["a=1 , b=2", "c=3"]}, trust=True, accept_b3=False
    )
    context = start_gateway_span(extraction, ALWAYS)
    assert context.tracestate == "a=1,b=2,c=3"
    assert extraction.clear == ()


@pytest.mark.parametrize(
    "headers",
    [
        {"tracestate": ["a=1"]},  # no traceparent
        {"traceparent": [_tp(trace_id="0" * 32)], "tracestate": ["a=1"]},  # invalid traceparent
        {"traceparent": [_tp(), _tp()], "tracestate": ["a=1"]},  # duplicate traceparent
    ],
)
def test_tracestate_without_a_valid_traceparent_is_removed(headers: dict) -> None:
    extraction = extract(headers, trust=True, accept_b3=False)
    assert extraction.tracestate is None
    assert "tracestate" in extraction.clear
    assert ("tracestate", "without_valid_traceparent") in extraction.problems
    assert start_gateway_span(extraction, ALWAYS).tracestate is None


def test_invalid_tracestate_is_removed_but_the_parent_kept() -> None:
    extraction = extract(
        {"traceparent": [_tp()], "tracestate": ["FOO=1"]}, trust=True, accept_b3=False
    )
    assert extraction.parent is not None
    assert extraction.clear == ("tracestate",)
    assert extraction.problems == (("tracestate", "key"),)


def test_too_many_tracestate_members_are_removed() -> None:
    members = ",".join(f"k{i}=v" for i in range(33))
    extraction = extract(
        {"traceparent": [_tp()], "tracestate": [members]}, trust=True, accept_b3=False
    )
    assert extraction.tracestate is None and extraction.clear == ("tracestate",)
    assert extraction.problems == (("tracestate", "too_many_members"),)


def test_empty_tracestate_is_not_sent_on() -> None:
    extraction = extract(
        {"traceparent": [_tp()], "tracestate": [" , "]}, trust=True, accept_b3=False
    )
    assert extraction.tracestate is None and extraction.clear == ("tracestate",)


def test_trust_boundary_ignores_everything_incoming() -> None:
    headers = {"traceparent": [_tp("01")], "tracestate": ["a=1"], "b3": [f"{B3_TRACE}-{B3_SPAN}-1"]}
    extraction = extract(headers, trust=False, accept_b3=True)
    assert extraction.parent is None and extraction.tracestate is None
    assert set(extraction.clear) == {"tracestate", "b3"}
    assert extraction.problems == ()
    context = start_gateway_span(extraction, NEVER)
    assert context.trace_id != TRACE_ID and not context.sampled  # no forced sampling


def test_b3_is_ignored_unless_accepted() -> None:
    headers = {"b3": [f"{B3_TRACE}-{B3_SPAN}-1"]}
    assert extract(headers, trust=True, accept_b3=False).parent is None
    assert extract(headers, trust=True, accept_b3=False).clear == ()


def test_b3_single_in_w3c_out() -> None:
    extraction = extract({"b3": [f"{B3_TRACE}-{B3_SPAN}-0"]}, trust=True, accept_b3=True)
    context = start_gateway_span(extraction, ALWAYS)
    assert (context.trace_id, context.parent_span_id, context.sampled) == (B3_TRACE, B3_SPAN, False)
    assert not context.random
    assert extraction.clear == ("b3",)


def test_b3_multi_in_and_consumed() -> None:
    headers = {"x-b3-traceid": [B3_TRACE], "x-b3-spanid": [B3_SPAN], "x-b3-sampled": ["1"]}
    extraction = extract(headers, trust=True, accept_b3=True)
    assert extraction.parent is not None and extraction.parent.source == "b3"
    assert set(extraction.clear) == set(headers)


def test_b3_without_sampling_state_defers_to_the_ratio() -> None:
    extraction = extract({"b3": [f"{B3_TRACE}-{B3_SPAN}"]}, trust=True, accept_b3=True)
    assert start_gateway_span(extraction, ALWAYS).sampled
    assert not start_gateway_span(extraction, NEVER).sampled


def test_valid_traceparent_wins_over_b3() -> None:
    headers = {"traceparent": [_tp()], "b3": [f"{B3_TRACE}-{B3_SPAN}-1"]}
    extraction = extract(headers, trust=True, accept_b3=True)
    assert extraction.parent is not None and extraction.parent.trace_id == TRACE_ID
    assert extraction.clear == ("b3",)  # upstreams see one context, ours


def test_b3_parent_drops_tracestate() -> None:
    headers = {"traceparent": ["garbage"], "tracestate": ["a=1"], "b3": [f"{B3_TRACE}-{B3_SPAN}-1"]}
    extraction = extract(headers, trust=True, accept_b3=True)
    assert extraction.parent is not None and extraction.parent.source == "b3"
    assert extraction.tracestate is None and "tracestate" in extraction.clear
    assert ("traceparent", "version") in extraction.problems


def test_invalid_b3_counts_and_restarts() -> None:
    extraction = extract({"x-b3-traceid": [B3_TRACE]}, trust=True, accept_b3=True)
    assert extraction.parent is None
    assert extraction.problems == (("x-b3", "format"),)


# -- the access plan: what the two writes carry ------------------------------------------


def test_plan_writes_upstream_and_response_headers_once() -> None:
    config = TraceConfig.from_kong({"response_trace_context": True})
    plan = plan_access(
        config, {"traceparent": [_tp()], "tracestate": ["x=1"], "x-request-id": ["client-id-1234"]}
    )
    context = plan.context
    assert plan.upstream_headers == {
        "traceparent": context.traceparent,
        "tracestate": "x=1",
        "X-Request-ID": "client-id-1234",
    }
    assert plan.response_headers == {
        "X-Request-ID": "client-id-1234",
        "traceresponse": context.traceparent,
    }


def test_plan_clears_dropped_headers_with_empty_lists() -> None:
    config = TraceConfig.from_kong({"trust_incoming_context": False})
    plan = plan_access(config, {"traceparent": [_tp()], "tracestate": ["x=1"]})
    assert plan.upstream_headers["tracestate"] == []
    assert parse_traceparent(plan.upstream_headers["traceparent"]).trace_id != TRACE_ID  # type: ignore[arg-type]
    assert "traceresponse" not in plan.response_headers


def test_plan_server_timing_format() -> None:
    config = TraceConfig.from_kong(
        {"response_trace_context": True, "response_trace_format": "server-timing"}
    )
    plan = plan_access(config, {})
    assert plan.response_headers["Server-Timing"] == f"trace;desc={plan.context.traceparent}"


def test_plan_request_id_under_a_custom_header() -> None:
    config = TraceConfig.from_kong(
        {"request_id_header": "Correlation-Id", "request_id_format": "hex32"}
    )
    plan = plan_access(config, {"x-request-id": ["ignored-12345"], "correlation-id": ["bad id"]})
    assert plan.request_id.outcome == "replaced_invalid"
    assert re.fullmatch(r"[0-9a-f]{32}", plan.upstream_headers["Correlation-Id"])  # type: ignore[arg-type]
    assert plan.response_headers["Correlation-Id"] == plan.upstream_headers["Correlation-Id"]
