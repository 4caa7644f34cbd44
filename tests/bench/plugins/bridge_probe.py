"""``bridge-probe``: what the bridge bench (tests/bench/bridge.py) runs on each bridge: an
event making ``calls`` PDK calls (``kong.request.get_header``) after waiting ``wait``
seconds (gevent's sleep: Redis or a key fetch). ``--kong-pdk-threads`` serves it with
kong-pdk's bridge in its default threads mode, the other flags as edge_plugins.server reads
them (``--kong-pdk-bridge``: kong-pdk in gevent mode; neither: edge_plugins.pdk_bridge).
"""

from __future__ import annotations

import sys
import time
from typing import Any

NAME = "bridge-probe"
version = "0.1.0"
priority = 1000
Schema = (
    {"calls": {"type": "integer", "default": 0}},
    {"wait": {"type": "number", "default": 0}},
)


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.calls = int(config.get("calls") or 0)
        self.wait = float(config.get("wait") or 0)

    def access(self, kong: Any) -> None:
        if self.wait:
            time.sleep(self.wait)  # cooperative under gevent's monkey patching
        for _ in range(self.calls):
            kong.request.get_header("x-probe")


if __name__ == "__main__":
    if "--kong-pdk-threads" in sys.argv:
        sys.argv.remove("--kong-pdk-threads")
        from kong_pdk.cli import start_dedicated_server

        from edge_plugins.server import use_lossless_rpc_strings

        use_lossless_rpc_strings()
        start_dedicated_server(NAME, Plugin, version, priority, Schema)
    else:
        from edge_plugins.server import serve

        serve(sys.modules[__name__])
