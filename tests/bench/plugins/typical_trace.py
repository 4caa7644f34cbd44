"""``typical-trace``: request id and W3C ``traceparent`` the way most kong-pdk plugins do it.

kong-pdk's defaults (threads mode, Lua-style ``value, err`` returns), one PDK call per header
read or written: two reads, two upstream headers, one response header — 5 round trips where
edge-trace makes 3. No span is exported (the bench runs edge-trace without a collector too).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

NAME = os.environ.get("TYPICAL_NAME", "typical-trace")  # the bench runs a gevent copy too
version = "0.1.0"
priority = 100000  # edge-trace's: first on every request
Schema: tuple[dict[str, Any], ...] = ()


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def access(self, kong: Any) -> None:
        parent, _ = kong.request.get_header("traceparent")
        request_id, _ = kong.request.get_header("x-request-id")
        trace_id = parent.split("-")[1] if parent and parent.count("-") == 3 else None
        trace_id = trace_id or secrets.token_hex(16)
        request_id = request_id or secrets.token_hex(16)
        kong.service.request.set_header("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")
        kong.service.request.set_header("x-request-id", request_id)
        kong.response.set_header("x-request-id", request_id)


if __name__ == "__main__":
    from kong_pdk.cli import start_dedicated_server

    start_dedicated_server(NAME, Plugin, version, priority, Schema)
