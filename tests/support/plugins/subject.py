"""``edge-subject``: a test-only stand-in for edge-jwt's hand-over to later plugins.

It copies the request's ``X-Test-Subject`` header into ``kong.ctx.shared["edge.subject"]``
(what edge-jwt does after accepting a token), so edge-rate-limit's per-user keys can be
tested without minting tokens. Priority 1450, like edge-jwt; nothing ships it.
"""

from __future__ import annotations

import sys
from typing import Any

from edge_plugins.guard import FailurePolicy, guarded

NAME = "edge-subject"
version = "0.1.0"
priority = 1450
Schema: tuple[dict[str, Any], ...] = ()


class Plugin:
    failure_policy = FailurePolicy.OPEN

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @guarded
    def access(self, kong: Any) -> None:
        subject = kong.request.get_header("x-test-subject")
        if subject:
            kong.ctx.shared.set("edge.subject", subject)


if __name__ == "__main__":
    from edge_plugins.server import serve

    serve(sys.modules[__name__])
