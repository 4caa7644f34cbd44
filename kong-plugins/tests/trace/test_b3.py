"""B3 single and multi header parsing (openzipkin/b3-propagation)."""

from __future__ import annotations

import pytest

from edge_plugins.trace.b3 import B3Context, InvalidB3, parse_multi, parse_single

TRACE_ID = "80f198ee56343ba864fe8b2a57d3eff7"
SPAN_ID = "e457b5a2e4d86bd1"
PARENT = "05e3ac9a4f6e3b90"


@pytest.mark.parametrize(
    ("value", "sampled"),
    [
        (f"{TRACE_ID}-{SPAN_ID}-1-{PARENT}", True),
        (f"{TRACE_ID}-{SPAN_ID}-d", True),
        (f"{TRACE_ID}-{SPAN_ID}-0", False),
        (f"{TRACE_ID}-{SPAN_ID}", None),
    ],
)
def test_single_header(value: str, sampled: bool | None) -> None:
    assert parse_single(value) == B3Context(TRACE_ID, SPAN_ID, sampled)


def test_single_header_64_bit_trace_id_is_left_padded() -> None:
    context = parse_single(f"{TRACE_ID[16:]}-{SPAN_ID}-1")
    assert context is not None and context.trace_id == "0" * 16 + TRACE_ID[16:]


@pytest.mark.parametrize("value", ["0", "1", "d"])
def test_bare_sampling_state_carries_no_context(value: str) -> None:
    assert parse_single(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x", "format"),
        (f"{TRACE_ID.upper()}-{SPAN_ID}-1", "trace_id"),
        (f"{TRACE_ID[:20]}-{SPAN_ID}-1", "trace_id"),
        (f"{'0' * 32}-{SPAN_ID}-1", "trace_id_zero"),
        (f"{TRACE_ID}-{SPAN_ID[:-1]}-1", "span_id"),
        (f"{TRACE_ID}-{'0' * 16}-1", "span_id_zero"),
        (f"{TRACE_ID}-{SPAN_ID}-true", "sampled"),
        (f"{TRACE_ID}-{SPAN_ID}-1-xyz", "parent_span_id"),
        (f"{TRACE_ID}-{SPAN_ID}-1-{PARENT}-extra", "format"),
    ],
)
def test_single_header_invalid(value: str, reason: str) -> None:
    with pytest.raises(InvalidB3) as caught:
        parse_single(value)
    assert caught.value.reason == reason


def test_multi_headers() -> None:
    headers = {
        "x-b3-traceid": [TRACE_ID],
        "x-b3-spanid": [SPAN_ID],
        "x-b3-parentspanid": [PARENT],
        "x-b3-sampled": ["1"],
    }
    assert parse_multi(headers) == B3Context(TRACE_ID, SPAN_ID, True)
    headers["x-b3-sampled"] = ["false"]
    assert parse_multi(headers) == B3Context(TRACE_ID, SPAN_ID, False)


def test_multi_debug_flag_means_sampled() -> None:
    headers = {
        "x-b3-traceid": [TRACE_ID],
        "x-b3-spanid": [SPAN_ID],
        "x-b3-flags": ["1"],
        "x-b3-sampled": ["0"],
    }
    assert parse_multi(headers) == B3Context(TRACE_ID, SPAN_ID, True)


def test_multi_without_ids_is_no_context() -> None:
    assert parse_multi({"x-b3-sampled": ["1"]}) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"x-b3-traceid": [TRACE_ID]}, "format"),
        ({"x-b3-traceid": [TRACE_ID], "x-b3-spanid": [SPAN_ID, SPAN_ID]}, "duplicate"),
        (
            {"x-b3-traceid": [TRACE_ID], "x-b3-spanid": [SPAN_ID], "x-b3-sampled": ["yes"]},
            "sampled",
        ),
        ({"x-b3-traceid": [TRACE_ID], "x-b3-spanid": [SPAN_ID], "x-b3-flags": ["2"]}, "flags"),
    ],
)
def test_multi_invalid(headers: dict[str, list[str]], reason: str) -> None:
    with pytest.raises(InvalidB3) as caught:
        parse_multi(headers)
    assert caught.value.reason == reason
