"""The client key of ``limit_by: ip``: one IPv6 client per prefix, IPv4-mapped = IPv4."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_plugins.ratelimit.client_address import client_address_key


def test_ipv4_is_its_address() -> None:
    assert client_address_key("203.0.113.7") == "ip:203.0.113.7"
    assert client_address_key(" 203.0.113.7 ") == "ip:203.0.113.7"


def test_addresses_of_one_slash_64_are_one_client() -> None:
    keys = {client_address_key(f"2001:db8:aa:bb::{n:x}") for n in range(1, 9)}
    keys.add(client_address_key("2001:db8:aa:bb:ffff:ffff:ffff:ffff"))
    assert keys == {"ip:2001:db8:aa:bb::/64"}


def test_the_next_slash_64_is_another_client() -> None:
    assert client_address_key("2001:db8:aa:bb::1") != client_address_key("2001:db8:aa:bc::1")


def test_spellings_of_one_address_are_one_key() -> None:
    spellings = ("2001:DB8:AA:BB::1", "2001:0db8:00aa:00bb:0000:0000:0000:0001", "fe80::1%eth0")
    assert client_address_key(spellings[0]) == client_address_key(spellings[1])
    assert client_address_key(spellings[2]) == "ip:fe80::/64"


def test_ipv4_mapped_ipv6_is_the_ipv4_address() -> None:
    assert client_address_key("::ffff:10.200.1.1") == client_address_key("10.200.1.1")
    assert client_address_key("::FFFF:0a c8:0101".replace(" ", "")) == "ip:10.200.1.1"
    assert client_address_key("::ffff:10.200.1.1", 128) == "ip:10.200.1.1"


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        (32, "ip:2001:db8::/32"),
        (48, "ip:2001:db8:aa::/48"),
        (56, "ip:2001:db8:aa:bb00::/56"),
        (64, "ip:2001:db8:aa:bbcc::/64"),
        (128, "ip:2001:db8:aa:bbcc:1:2:3:4"),
    ],
)
def test_the_prefix_is_configurable(prefix: int, key: str) -> None:
    assert client_address_key("2001:db8:aa:bbcc:1:2:3:4", prefix) == key


def test_what_does_not_parse_is_kept() -> None:
    assert client_address_key("unknown") == "ip:unknown"
    assert client_address_key(None) == "ip:"


@given(st.integers(0, 2**128 - 1), st.integers(32, 128))
def test_two_ipv6_addresses_share_a_key_exactly_when_they_share_the_prefix(
    value: int, prefix: int
) -> None:
    address = ipaddress.IPv6Address(value)
    flipped = ipaddress.IPv6Address(value ^ (1 << (128 - prefix)))  # last bit of the prefix
    inside = ipaddress.IPv6Address(value ^ ((1 << (128 - prefix)) - 1))  # all host bits
    if address.ipv4_mapped is not None or inside.ipv4_mapped is not None:
        return  # counted as IPv4 (test_ipv4_mapped_ipv6_is_the_ipv4_address), not by the prefix
    assert client_address_key(str(address), prefix) == client_address_key(str(inside), prefix)
    if flipped.ipv4_mapped is None:
        assert client_address_key(str(address), prefix) != client_address_key(str(flipped), prefix)
