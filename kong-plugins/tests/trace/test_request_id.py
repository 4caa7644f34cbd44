"""Request ids: the client's is kept only when safe, else a fresh one is generated."""

from __future__ import annotations

import ipaddress
import re
import uuid

import pytest

from edge_plugins.trace.request_id import (
    DEFAULT_PATTERN,
    RequestIdPolicy,
    decide_request_id,
    generate_request_id,
)

POLICY = RequestIdPolicy(header="X-Request-ID", pattern=re.compile(DEFAULT_PATTERN))
TRUSTING_LB = RequestIdPolicy(
    header="X-Request-ID",
    pattern=re.compile(DEFAULT_PATTERN),
    trusted_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
)


@pytest.mark.parametrize(
    "value",
    ["abcdefgh", "req:2024-01-01.abc_DEF-9", "a" * 128, "3f0c1d2e-6a7b-4c8d-9e0f-1a2b3c4d5e6f"],
)
def test_accepted(value: str) -> None:
    decision = decide_request_id(POLICY, [value])
    assert (decision.value, decision.outcome) == (value, "accepted")


@pytest.mark.parametrize(
    "value",
    [
        "short",
        "a" * 129,
        "has space 123",
        "semi;colon1",
        "abcdefgh\n",
        "<script>alert</script>",
        "ünïcødé-id",
    ],
)
def test_invalid_is_replaced(value: str) -> None:
    decision = decide_request_id(POLICY, [value])
    assert decision.outcome == "replaced_invalid"
    assert decision.value != value
    uuid.UUID(decision.value)  # the default format


def test_absent_is_generated() -> None:
    assert decide_request_id(POLICY, None).outcome == "generated"
    assert decide_request_id(POLICY, []).outcome == "generated"


def test_two_values_are_ambiguous() -> None:
    decision = decide_request_id(POLICY, ["abcdefgh1", "abcdefgh2"])
    assert decision.outcome == "replaced_duplicate"
    assert decision.value not in ("abcdefgh1", "abcdefgh2")


def test_pattern_must_match_in_full() -> None:
    permissive_end = RequestIdPolicy(header="X-Request-ID", pattern=re.compile(r"[a-z]{8}"))
    assert decide_request_id(permissive_end, ["abcdefgh"]).accepted
    assert not decide_request_id(permissive_end, ["abcdefghij!"]).accepted


@pytest.mark.parametrize(
    ("client_ip", "accepted"),
    [
        ("10.1.2.3", True),
        ("192.168.1.1", False),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("not-an-ip", False),
        (None, False),
    ],
)
def test_trusted_ips(client_ip: str | None, accepted: bool) -> None:
    assert TRUSTING_LB.needs_client_ip and not POLICY.needs_client_ip
    decision = decide_request_id(TRUSTING_LB, ["abcdefgh-1"], client_ip)
    assert decision.accepted is accepted
    if not accepted:
        assert decision.outcome == "replaced_untrusted"


def test_generated_formats() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", generate_request_id("hex32"))
    assert uuid.UUID(generate_request_id("uuid4")).version == 4
    assert generate_request_id() != generate_request_id()
