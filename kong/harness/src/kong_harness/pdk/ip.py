"""``kong.ip``: ``kong/pdk/ip.lua``, and the ``trusted_ips`` it checks against."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from kong_harness.pdk.context import RequestContext
from kong_harness.pdk.table import pdk_method, string_arg_at


@pdk_method("kong.ip.is_trusted")
def _ip_is_trusted(ctx: RequestContext, args: list[Any]) -> bool:
    address = string_arg_at(args, 0, "address must be a string")
    return ctx.trusted(address)


def trusted_ips_checker(cidrs: Iterable[str]) -> Callable[[str], bool]:
    """``trusted_ips`` from kong.conf (``0.0.0.0/0,::/0`` trusts all, empty trusts none)."""
    networks = [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in networks if n.version == ip.version)

    return trusted
