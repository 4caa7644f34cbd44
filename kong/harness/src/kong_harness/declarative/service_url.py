"""A service's ``url`` shorthand (``kong/db/schema/entities/services.lua``), parsed with
LuaSocket's ``url.parse`` semantics."""

from __future__ import annotations

import re
from typing import Any


def _socket_url_parse(url: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    rest = url
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9+\-.]*):", rest)
    if m:
        parsed["scheme"] = m.group(1)
        rest = rest[m.end() :]
    m = re.match(r"//([^/]*)", rest)
    if m:
        parsed["authority"] = m.group(1)
        rest = rest[m.end() :]
    for sep in ("#", "?", ";"):
        pos = rest.find(sep)
        if pos != -1:
            rest = rest[:pos]
    if rest:
        parsed["path"] = rest
    authority = parsed.get("authority")
    if authority is None:
        return parsed
    authority = re.sub(r"^[^@]*@", "", authority, count=1)
    pm = re.search(r":([^:\]]*)$", authority)
    if pm:
        parsed["port"] = pm.group(1)
        authority = authority[: pm.start()]
    if authority:
        bm = re.fullmatch(r"\[(.+)\]", authority)
        parsed["host"] = bm.group(1) if bm else authority
    return parsed


def expand_service_url(url: str) -> dict[str, Any]:
    """``services.lua`` ``url`` shorthand."""
    parsed = _socket_url_parse(url)
    port_text = parsed.get("port")
    port: Any = int(port_text) if port_text and port_text.isdigit() else None
    prot = "http" if port == 80 else "https" if port == 443 else None
    protocol = parsed.get("scheme") or prot or "http"
    if port is None:
        if port_text is not None:
            port = port_text  # not a number: schema validation will complain
        else:
            port = 80 if protocol == "http" else 443 if protocol == "https" else 80
    return {
        "protocol": protocol,
        "host": parsed.get("host"),
        "port": port,
        "path": parsed.get("path"),
    }
