"""nginx's realip module as Kong configures it: ``$remote_addr`` from a trusted peer's header.

Sources: kong/templates/nginx_kong.lua (``set_real_ip_from`` for every ``trusted_ips``
entry; ``real_ip_header``/``real_ip_recursive`` are injected as ``nginx_proxy_*``
directives), kong/templates/kong_defaults.lua (``X-Real-IP``, ``off``) and
kong/conf_loader/constants.lua (``real_ip_header``/``real_ip_recursive`` are aliases of
``nginx_proxy_real_ip_header``/``nginx_proxy_real_ip_recursive``). The algorithm is that of
nginx 1.25.3 (Kong 3.9.3's OpenResty 1.25.3.2), ngx_http_realip_module.c
``ngx_http_realip_handler`` and ngx_http_core_module.c ``ngx_http_get_forwarded_addr``:

* ``X-Real-IP`` (or any header but the two below): the FIRST header line of that name; its
  value is read from the right: trailing spaces and commas skipped, the last item (after
  the last space or comma) must be an address (``ngx_parse_addr_port``: IPv4, IPv6, or
  either with a port); an invalid one leaves ``$remote_addr`` unchanged. With
  ``real_ip_recursive on`` the walk goes on leftwards while the address found is trusted.
* ``X-Forwarded-For``: every ``X-Forwarded-For`` line, the last line first. Off: the last
  item of the last line. On: right to left across the lines while the address found is
  trusted; the first untrusted (or the leftmost) address wins; an invalid item stops the
  walk at the last good address.
* ``proxy_protocol``: the harness speaks no PROXY protocol: unchanged.

Nothing changes unless the directly connected peer is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence

_DECLINED, _OK, _DONE = 0, 1, 2


def settings(conf: Mapping[str, str]) -> tuple[str, bool]:
    """(header, recursive) from kong.conf: the nginx_proxy_* directive, else its alias."""
    header = conf.get("nginx_proxy_real_ip_header") or conf.get("real_ip_header") or "X-Real-IP"
    recursive = conf.get("nginx_proxy_real_ip_recursive") or conf.get("real_ip_recursive") or "off"
    return header.strip(), recursive.strip().lower() == "on"


def remote_addr(
    peer: str,
    headers: Sequence[tuple[str, str]],
    header: str,
    recursive: bool,
    trusted: Callable[[str], bool],
) -> str:
    """``$remote_addr`` after the realip module, for a request from ``peer``."""
    if header == "proxy_protocol":
        return peer
    lname = header.lower()
    values = [v for k, v in headers if k.lower() == lname]
    if not values:
        return peer
    if header != "X-Forwarded-For":  # the directive's exact spelling, as nginx compares it
        values = values[:1]  # headers_in.x_real_ip / the generic lookup: the first line
        rc, addr = _forwarded_addr_internal(peer, values[0], trusted, recursive)
        return addr if rc != _DECLINED else peer
    rc, addr, found = _DECLINED, peer, False
    for value in reversed(values):
        rc, addr = _forwarded_addr_internal(addr, value, trusted, recursive)
        if not recursive:
            break
        if rc == _DECLINED and found:
            rc = _DONE
            break
        if rc != _OK:
            break
        found = True
    return addr if rc != _DECLINED else peer


def _forwarded_addr_internal(
    addr: str, value: str, trusted: Callable[[str], bool], recursive: bool
) -> tuple[int, str]:
    found = False
    length = len(value)
    while True:
        if not trusted(addr):
            return (_DONE if found else _DECLINED), addr
        p = length - 1
        while p > 0 and value[p] in " ,":  # skip trailing separators
            p -= 1
            length -= 1
        while p > 0:  # back to the start of the last item
            if value[p] in " ,":
                p += 1
                break
            p -= 1
        parsed = parse_addr_port(value[max(p, 0) : length]) if length > 0 else None
        if parsed is None:
            return (_DONE if found else _DECLINED), addr
        addr, found = parsed, True
        length = p - 1
        if not (recursive and p > 0):
            return _OK, addr


def parse_addr_port(text: str) -> str | None:
    """ngx_parse_addr_port: an address, optionally with a port; as ``$remote_addr`` prints
    it (ngx_sock_ntop without the port), or None when nginx would decline it."""
    address = _parse_addr(text)
    if address is not None:
        return address
    if text.startswith("["):
        close = text.find("]")
        if close == -1 or close == len(text) - 1 or text[close + 1] != ":":
            return None
        host, port = text[1:close], text[close + 2 :]
    else:
        host, sep, port = text.partition(":")
        if not sep:
            return None
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return _parse_addr(host)


def _parse_addr(text: str) -> str | None:
    """ngx_parse_addr: ngx_inet_addr, then ngx_inet6_addr."""
    ipv4 = _inet_addr(text)
    if ipv4 is not None:
        return ipv4
    if "%" in text or not text or not text.isascii():
        return None
    try:
        packed = ipaddress.IPv6Address(text).packed
    except ValueError:
        return None
    return _inet6_ntop(packed)


def _inet_addr(text: str) -> str | None:
    """ngx_inet_addr: digits and dots, exactly three dots, octets ≤ 255 (empty ones are 0,
    leading zeros allowed); 255.255.255.255 is INADDR_NONE and so declined."""
    octets, octet, dots = [], 0, 0
    for c in text:
        if "0" <= c <= "9":
            octet = octet * 10 + ord(c) - 48
            if octet > 255:
                return None
        elif c == ".":
            octets.append(octet)
            octet, dots = 0, dots + 1
        else:
            return None
    if dots != 3:
        return None
    octets.append(octet)
    if octets == [255, 255, 255, 255]:
        return None
    return ".".join(map(str, octets))


def _inet6_ntop(p: bytes) -> str:
    """ngx_inet6_ntop: the longest run (≥ 2) of zero groups as ``::``, the first of equal
    runs; a leading run of 5 before ffff, of 6, or of 7 (but ::1) ends in dotted IPv4."""
    groups = [p[i] * 256 + p[i + 1] for i in range(0, 16, 2)]
    zero, best, run, start = -1, 1, 0, -1
    for i, g in enumerate(groups):
        if g:
            if best < run:
                zero, best = start, run
            run = 0
            continue
        if run == 0:
            start = i
        run += 1
    if best < run:
        zero, best = start, run
    n = 8
    out = ""
    if zero == 0:
        if (
            (best == 5 and groups[5] == 0xFFFF)
            or best == 6
            or (best == 7 and p[14] != 0 and p[15] != 1)
        ):
            n = 6
        out = ":"
    i = 0
    while i < n:
        if i == zero:
            out += ":"
            i += best
            continue
        out += f"{groups[i]:x}"
        if i < 7:
            out += ":"
        i += 1
    if n == 6:
        out += ".".join(str(b) for b in p[12:16])
    return out
