"""``traceparent`` parsing: every validity case of W3C Trace Context (Level 2) and its
official test suite (w3c/trace-context test/test.py)."""

from __future__ import annotations

import pytest

from edge_plugins.trace.traceparent import (
    InvalidTraceparent,
    format_traceparent,
    parse_traceparent,
)

TRACE_ID = "12345678901234567890123456789012"
SPAN_ID = "1234567890123456"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


def _reason(value: str) -> str:
    with pytest.raises(InvalidTraceparent) as caught:
        parse_traceparent(value)
    return caught.value.reason


def test_valid_version_00() -> None:
    parsed = parse_traceparent(VALID)
    assert (parsed.version, parsed.trace_id, parsed.parent_id, parsed.flags) == (
        0,
        TRACE_ID,
        SPAN_ID,
        1,
    )
    assert parsed.sampled and not parsed.random


@pytest.mark.parametrize(
    ("flags", "sampled", "random"),
    [
        ("00", False, False),
        ("01", True, False),
        ("02", False, True),
        ("03", True, True),
        ("ff", True, True),  # reserved bits are ignored on input, never interpreted
    ],
)
def test_flags_are_a_bit_field(flags: str, sampled: bool, random: bool) -> None:
    parsed = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-{flags}")
    assert (parsed.sampled, parsed.random) == (sampled, random)


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE_ID}-{SPAN_ID}-01.",
        f"00-{TRACE_ID}-{SPAN_ID}-01-what-the-future-will-be-like",
    ],
)
def test_version_00_with_extra_fields_is_invalid(value: str) -> None:
    assert _reason(value) == "length"


@pytest.mark.parametrize(
    "value",
    [
        f"cc-{TRACE_ID}-{SPAN_ID}-01",
        f"cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future-will-be-like",
    ],
)
def test_higher_version_is_parsed_forward_compatibly(value: str) -> None:
    parsed = parse_traceparent(value)
    assert (parsed.version, parsed.trace_id, parsed.parent_id, parsed.sampled) == (
        0xCC,
        TRACE_ID,
        SPAN_ID,
        True,
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"cc-{TRACE_ID}-{SPAN_ID}-01.what-the-future-will-be-like", "format"),
        (f"cc-{TRACE_ID}-{SPAN_ID}-0", "length"),  # shorter than 55: never parsed
        (f"cc-{TRACE_ID}0-{SPAN_ID}-01", "format"),  # fields not in their version-00 places
    ],
)
def test_higher_version_still_needs_the_version_00_layout(value: str, reason: str) -> None:
    assert _reason(value) == reason


def test_version_ff_is_forbidden() -> None:
    assert _reason(f"ff-{TRACE_ID}-{SPAN_ID}-01") == "version_ff"


@pytest.mark.parametrize(
    "value",
    [
        f".0-{TRACE_ID}-{SPAN_ID}-01",
        f"0.-{TRACE_ID}-{SPAN_ID}-01",
        f"0A-{TRACE_ID}-{SPAN_ID}-01",  # upper-case hex
        f"000-{TRACE_ID}-{SPAN_ID}-01",
        f"0000-{TRACE_ID}-{SPAN_ID}-01",
        f"0-{TRACE_ID}-{SPAN_ID}-01",
    ],
)
def test_illegal_version(value: str) -> None:
    assert _reason(value) == "version"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"00-.{TRACE_ID[1:]}-{SPAN_ID}-01", "trace_id"),
        (f"00-{TRACE_ID[:-1]}.-{SPAN_ID}-01", "trace_id"),
        (f"00-{TRACE_ID.upper()[:-1]}A-{SPAN_ID}-01", "trace_id"),
        (f"00-{TRACE_ID[:-1]}G-{SPAN_ID}-01", "trace_id"),
        (f"00-{SPAN_ID}-{SPAN_ID}-01", "length"),  # too short
        (f"00-{TRACE_ID}3-{SPAN_ID}-01", "length"),  # too long
        (f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01", "length"),
        (f"00-{'0' * 32}-{SPAN_ID}-01", "trace_id_zero"),
    ],
)
def test_illegal_trace_id(value: str, reason: str) -> None:
    assert _reason(value) == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"00-{TRACE_ID}-.{SPAN_ID[1:]}-01", "parent_id"),
        (f"00-{TRACE_ID}-{SPAN_ID[:-1]}.-01", "parent_id"),
        (f"00-{TRACE_ID}-{SPAN_ID[:-1]}A-01", "parent_id"),
        (f"00-{TRACE_ID}-{SPAN_ID}7-01", "length"),
        (f"00-{TRACE_ID}-{SPAN_ID[:-1]}-01", "length"),
        (f"00-{TRACE_ID}-{'0' * 16}-01", "parent_id_zero"),
    ],
)
def test_illegal_parent_id(value: str, reason: str) -> None:
    assert _reason(value) == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"00-{TRACE_ID}-{SPAN_ID}-.0", "flags"),
        (f"00-{TRACE_ID}-{SPAN_ID}-0.", "flags"),
        (f"00-{TRACE_ID}-{SPAN_ID}-0A", "flags"),
        (f"00-{TRACE_ID}-{SPAN_ID}-001", "length"),
        (f"00-{TRACE_ID}-{SPAN_ID}-1", "length"),
    ],
)
def test_illegal_flags(value: str, reason: str) -> None:
    assert _reason(value) == reason


@pytest.mark.parametrize(
    "value", [f" {VALID}", f"\t{VALID}", f"{VALID} ", f"{VALID}\t", f"\t {VALID} \t"]
)
def test_optional_whitespace_around_the_value(value: str) -> None:
    assert parse_traceparent(value).trace_id == TRACE_ID


def test_whitespace_inside_is_not_optional() -> None:
    assert _reason(f"00 -{TRACE_ID}-{SPAN_ID}-01") == "version"
    assert _reason("") == "empty"
    assert _reason(" \t ") == "empty"


def test_format_writes_version_00_and_only_known_flags() -> None:
    assert format_traceparent(TRACE_ID, SPAN_ID, 0xFF) == f"00-{TRACE_ID}-{SPAN_ID}-03"
    assert format_traceparent(TRACE_ID, SPAN_ID, 0) == f"00-{TRACE_ID}-{SPAN_ID}-00"
    assert parse_traceparent(format_traceparent(TRACE_ID, SPAN_ID, 3)).flags == 3
