"""``tracestate`` parsing and limits (W3C Trace Context Level 2 §tracestate, and the
expectations of its official test suite)."""

from __future__ import annotations

import pytest

from edge_plugins.trace.tracestate import (
    MAX_LENGTH,
    InvalidTracestate,
    parse_tracestate,
    truncate,
)


def _members(*values: str) -> list[tuple[str, str]]:
    return list(parse_tracestate(values).members)


def _reason(*values: str) -> str:
    with pytest.raises(InvalidTracestate) as caught:
        parse_tracestate(values)
    return caught.value.reason


def test_several_fields_are_one_list_in_order() -> None:
    state = parse_tracestate(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"])
    assert state.header() == "foo=1,bar=2,rojo=1,congo=2,baz=3"


def test_optional_whitespace_and_empty_members_are_dropped() -> None:
    assert _members("foo=1 \t , \t bar=2, \t baz=3") == [("foo", "1"), ("bar", "2"), ("baz", "3")]
    assert _members("\t foo=1 \t") == [("foo", "1")]
    assert _members("", "foo=1", ",,  ,") == [("foo", "1")]
    assert not parse_tracestate([""])


def test_leading_spaces_of_a_value_are_part_of_it() -> None:
    assert _members("foo= 1") == [("foo", " 1")]


def test_all_allowed_characters() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    vendor_key = key + "@a-z0-9_-*/"
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
    assert _members(f"{key}={value}") == [(key, value.rstrip())]
    assert _members(f"{vendor_key}={value}") == [(vendor_key, value.rstrip())]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("foo =1", "key"),
        ("FOO=1", "key"),
        ("foo.bar=1", "key"),
        ("@foo=1,bar=2", "key"),
        ("foo=bar=baz", "value"),
        ("foo=,bar=3", "value"),
        ("foo=\x7f", "value"),
        ("foo", "member"),
    ],
)
def test_one_malformed_member_drops_the_whole_header(value: str, reason: str) -> None:
    assert _reason(value) == reason


@pytest.mark.parametrize("key", ["foo@", "foo@@bar", "foo@bar@baz", "1abc"])
def test_level_2_key_grammar(key: str) -> None:
    assert _members(f"{key}=1,bar=2") == [(key, "1"), ("bar", "2")]


def test_key_and_value_length_limits() -> None:
    assert _members("foo=1", "z" * 256 + "=1")[1] == ("z" * 256, "1")
    assert _reason("foo=1", "z" * 257 + "=1") == "key"
    assert _members("a=" + "v" * 256) == [("a", "v" * 256)]
    assert _reason("a=" + "v" * 257) == "value"


def test_32_members_pass_and_33_drop_the_header() -> None:
    members = [f"bar{i:02d}={i:02d}" for i in range(1, 34)]
    assert len(_members(",".join(members[:32]))) == 32
    assert _reason(",".join(members[:10]), ",".join(members[10:])) == "too_many_members"


def test_duplicate_keys_keep_the_first_entry() -> None:
    state = parse_tracestate(["foo=1,bar=2", "foo=3"])
    assert state.members == (("foo", "1"), ("bar", "2"))
    assert state.duplicates == 1


def test_oversize_header_drops_large_entries_first_from_the_right() -> None:
    big1 = ("big1", "x" * 200)  # 205 characters: "larger than 128"
    big2 = ("big2", "y" * 200)
    small = [(f"k{i}", "v" * 20) for i in range(5)]  # 23 characters each
    members = [small[0], big1, small[1], big2, small[2], small[3], small[4]]
    kept = truncate(members)
    # Without big2 it fits (5*23 + 205 + 6 commas = 326), so only big2 goes.
    assert kept == [small[0], big1, small[1], small[2], small[3], small[4]]


def test_then_entries_go_from_the_right() -> None:
    members = [(f"key{i:02d}", "v" * 40) for i in range(20)]  # 46 characters each
    kept = truncate(members)
    assert kept == members[: len(kept)]
    assert len(",".join(f"{k}={v}" for k, v in kept)) <= MAX_LENGTH
    assert len(kept) == 10  # 10*46 + 9 commas = 469 fits; 11*46 + 10 = 516 would not


def test_parse_reports_truncation() -> None:
    state = parse_tracestate([",".join(f"key{i:02d}={'v' * 40}" for i in range(20))])
    assert state.truncated == 20 - len(state.members)
    assert len(state.header()) <= MAX_LENGTH
