"""The request id the gateway sends upstream and echoes to the client.

A client's id is only kept when it is safe to put into every log line, header and error
body downstream: one header value (several make it ambiguous), at most
:data:`MAX_LENGTH` characters, valid UTF-8, matching the configured pattern *in full*
(``fullmatch``, so a ``$`` in the pattern cannot be satisfied before a trailing newline),
and — when ``request_id_trusted_ips`` is configured — sent by a peer in those networks. The peer is
``kong.client.get_ip()``, the directly connected address: that is who set the header (a
load balancer, typically), whatever ``X-Forwarded-For`` claims. Anything else is replaced
by a fresh id (a UUID4 by default, or 32 hex characters like nginx's ``$request_id``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_HEADER = "X-Request-ID"
DEFAULT_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"
MAX_LENGTH = 256  # a hard cap before any pattern runs, whatever the pattern allows
_DEFAULT_RE = re.compile(DEFAULT_PATTERN)
FORMATS = ("uuid4", "hex32")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RequestIdPolicy:
    header: str  # as configured; sent and echoed under this name
    pattern: re.Pattern[str]
    trusted_networks: tuple[Network, ...] = ()
    id_format: str = "uuid4"

    @property
    def needs_client_ip(self) -> bool:
        """Only a trusted-networks rule costs the extra ``kong.client.get_ip()`` call."""
        return bool(self.trusted_networks)

    def trusts(self, client_ip: str | None) -> bool:
        if not self.trusted_networks:
            return True
        if not client_ip:
            return False
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(
            address in network
            for network in self.trusted_networks
            if network.version == address.version
        )


@dataclass(frozen=True, slots=True)
class RequestIdDecision:
    """``outcome``: accepted, generated (none sent), replaced_invalid, replaced_duplicate,
    replaced_untrusted."""

    value: str
    outcome: str

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


def generate_request_id(id_format: str = "uuid4") -> str:
    if id_format == "hex32":
        return os.urandom(16).hex()
    return str(uuid.uuid4())


def _is_utf8(value: str) -> bool:
    """Whether the header's bytes were UTF-8. Bytes that are not reach the plugin as lone
    surrogates (edge_plugins.server); such an id could not be logged, exported or echoed
    as sent, whatever a permissive pattern says."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_well_formed(value: str, pattern: re.Pattern[str] = _DEFAULT_RE) -> bool:
    """Whether ``value`` may be logged, sent and echoed as it is: within :data:`MAX_LENGTH`,
    valid UTF-8 and matching ``pattern`` in full (the default pattern unless configured)."""
    return len(value) <= MAX_LENGTH and _is_utf8(value) and bool(pattern.fullmatch(value))


def decide_request_id(
    policy: RequestIdPolicy, values: Sequence[str] | None, client_ip: str | None = None
) -> RequestIdDecision:
    """Keep the client's id if the policy allows it, else generate one (see module doc)."""
    if not values:
        return RequestIdDecision(generate_request_id(policy.id_format), "generated")
    if len(values) > 1:
        outcome = "replaced_duplicate"
    elif not is_well_formed(values[0], policy.pattern):
        outcome = "replaced_invalid"
    elif not policy.trusts(client_ip):
        outcome = "replaced_untrusted"
    else:
        return RequestIdDecision(values[0], "accepted")
    return RequestIdDecision(generate_request_id(policy.id_format), outcome)
