"""Per-address limits count a client, not each address it can pick (docs/rate-limiting.md).

An IPv6 client usually holds a whole /64 and can send from any address in it; a dual-stack
path can report an IPv4 client as ``::ffff:a.b.c.d``. edge-rate-limit's ``limit_by: ip`` key
groups IPv6 by ``ipv6_prefix`` (default 64) and reads an IPv4-mapped address as the IPv4
one, as the backend's sign-in throttle does (backend/docs/accounts.md).

Through the real gateway on ``auth-login`` (``limit_by: ip``): the client address is set with
``X-Real-IP`` (the test client is in ``trusted_ips``), and what the limiter counted is read
from ``X-RateLimit-Remaining-Minute``. Each test picks a random network of its own, so a
rerun within the minute (shared Redis counters) or another test never shares its bucket.
"""

from __future__ import annotations

import secrets

import httpx

from tests.security.stack import Stack

LOGIN = "/api/auth/login"
REMAINING = "X-RateLimit-Remaining-Minute"


def _remaining(stack: Stack, address: str) -> int:
    # An empty body: refused by the backend's validation (no password check, no sign-in
    # failure counted), after the limiter has counted it at the edge.
    response: httpx.Response = stack.client.post(LOGIN, json={}, headers={"X-Real-IP": address})
    assert response.status_code == 400, response.text
    return int(response.headers[REMAINING])


def test_addresses_of_one_ipv6_slash_64_share_one_budget(stack: Stack) -> None:
    network = f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}"
    addresses = [f"{network}:{secrets.randbits(16):x}::{n:x}" for n in range(1, 9)]
    seen = [_remaining(stack, address) for address in addresses]
    assert seen == [seen[0] - n for n in range(8)], seen


def test_the_next_slash_64_has_its_own_budget(stack: Stack) -> None:
    """Control: grouping stops at the prefix."""
    high, low = secrets.randbits(16), secrets.randbits(15) * 2
    first = [_remaining(stack, f"2001:db8:{high:x}:{low:x}::{n}") for n in (1, 2)]
    other = _remaining(stack, f"2001:db8:{high:x}:{low + 1:x}::1")
    assert other == first[0], (first, other)


def test_an_ipv4_mapped_address_is_the_ipv4_client(stack: Stack) -> None:
    # Not in 10.0.0.0/8, where stack.client_address gives every other request its own.
    ipv4 = f"172.16.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    seen = [_remaining(stack, address) for address in (ipv4, f"::ffff:{ipv4}", ipv4)]
    assert seen == [seen[0], seen[0] - 1, seen[0] - 2], seen
