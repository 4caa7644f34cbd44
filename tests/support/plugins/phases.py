"""``edge-phases``: a test-only plugin with rewrite and response phases (run as a script).

The harness's own tests use it to pin Kong's rewrite (global plugins only, before the router)
and response (buffered upstream answer) phases; nothing ships it.
"""

from __future__ import annotations

import sys
from typing import Any

from edge_plugins.guard import FailurePolicy, guarded

NAME = "edge-phases"
version = "0.1.0"
priority = 500
Schema: tuple[dict[str, Any], ...] = ()


class Plugin:
    failure_policy = FailurePolicy.OPEN

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @guarded
    def rewrite(self, kong: Any) -> None:
        kong.service.request.set_header("X-Rewrite", "ran")

    @guarded
    def access(self, kong: Any) -> None:
        kong.service.request.set_header("X-Access", "ran")

    @guarded
    def response(self, kong: Any) -> None:
        status = kong.service.response.get_status()
        upstream = kong.service.response.get_header("X-Upstream")
        kong.response.set_header("X-Seen", f"{status} {upstream}")


if __name__ == "__main__":
    from edge_plugins.server import serve

    serve(sys.modules[__name__])
