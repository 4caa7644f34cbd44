"""``typical-null``: a plain kong-pdk plugin in its default threads mode making no PDK call —
the floor of the typical plugins, as edge-demo in ``noop`` mode is the floor of ours (gevent
mode). ``TYPICAL_NULL_NAME`` and ``TYPICAL_NULL_PRIORITY`` run copies under other names.
"""

from __future__ import annotations

import os
from typing import Any

NAME = os.environ.get("TYPICAL_NULL_NAME", "typical-null")
version = "0.1.0"
priority = int(os.environ.get("TYPICAL_NULL_PRIORITY", "1000"))
Schema: tuple[dict[str, Any], ...] = ()


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def access(self, kong: Any) -> None:
        return None


if __name__ == "__main__":
    from kong_pdk.cli import start_dedicated_server

    start_dedicated_server(NAME, Plugin, version, priority, Schema)
