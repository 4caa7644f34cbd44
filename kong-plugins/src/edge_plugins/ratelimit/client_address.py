"""The counter key of a client address under ``limit_by: ip`` (and the IP fallbacks).

One client, one bucket. An IPv6 host is rarely given a single address: a subscriber, a
cloud instance or a container host usually holds a whole /64 (RFC 6177 §2, RFC 7934 §6),
and privacy addresses (RFC 8981) change within it, so counting per /128 gives one client as
many buckets as it cares to use addresses. The key is therefore the network of
``ipv6_prefix`` bits (default 64, as the backend's sign-in throttle groups,
backend/docs/accounts.md). An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, RFC 4291
§2.5.5.2) — what a dual-stack listener reports for an IPv4 peer — is that IPv4 address.

PDK-free: the entry module passes ``kong.client.get_forwarded_ip()`` in.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network, ip_address

DEFAULT_IPV6_PREFIX = 64
# Wider than an ISP's usual allocation (/32, the RIRs' minimum) is no longer "one client";
# /128 counts every address on its own.
IPV6_PREFIX_RANGE = (32, 128)


def client_address_key(address: str | None, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """``ip:<address>`` for IPv4 (IPv4-mapped IPv6 included), ``ip:<network>/<prefix>``
    for IPv6 (``ip:<address>`` at /128), in canonical text (RFC 5952).

    An address that does not parse is kept as it is: Kong passes what nginx's realip module
    accepted, so only a harness or a misconfiguration would send one.
    """
    text = (address or "").strip()
    try:
        ip = ip_address(text)
    except ValueError:
        return f"ip:{text}"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        ip = IPv6Address(ip.packed)  # without a zone (``%eth0``): one host, one key
        if ipv6_prefix >= 128:
            return f"ip:{ip}"
        return f"ip:{IPv6Network((ip, ipv6_prefix), strict=False)}"
    return f"ip:{ip}"
