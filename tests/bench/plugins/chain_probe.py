"""``chain-probe``: the edge chain's PDK calls without the edge plugins' own logic, for the
*runtime floor* rows of ``make bench`` (tests/bench/chain.py).

Each event makes the calls its edge plugin makes on the chain's happy path (the ``PDK_CALLS``
of edge_plugins.edge_trace, edge_jwt and edge_rate_limit; ``limit_by: subject`` after
edge-jwt), with arguments of the same shape and size, and does nothing else: no token, no
signature, no Redis, no metrics. So the chain of three probes on a bridge is what that
runtime costs the chain, and the edge chain less it is what the plugins' own Python costs.
The bench checks that the probes make as many round trips per request as the edge chain.

``CHAIN_PROBE_NAME`` and ``CHAIN_PROBE_PRIORITY`` name a copy; the config's ``plugin`` says
whose calls it makes. ``--with-log`` declares an idle log phase, as edge-trace's
``--export-spans`` does (the chain as it ran before). Served by edge_plugins.server, so
``--kong-pdk-bridge`` runs it on kong-pdk's bridge like the edge plugins.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

NAME = os.environ.get("CHAIN_PROBE_NAME", "chain-probe")
version = "0.1.0"
priority = int(os.environ.get("CHAIN_PROBE_PRIORITY", "1000"))
Schema = ({"plugin": {"type": "string", "required": True}},)

_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_REQUEST_ID = "3f0c1d2e-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
_ASSERTION = "eyJhbGciOiJFZERTQSJ9." + "x" * 560 + "." + "y" * 86  # an EdDSA assertion's size
CALLS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "edge-trace": (
        ("kong.request.get_headers", 1000),
        (
            "kong.service.request.set_headers",
            {"traceparent": _TRACEPARENT, "X-Request-ID": _REQUEST_ID},
        ),
        ("kong.response.set_headers", {"X-Request-ID": _REQUEST_ID, "traceresponse": _TRACEPARENT}),
    ),
    "edge-jwt": (
        ("kong.request.get_headers", 1000),
        ("kong.request.get_method",),
        ("kong.nginx.get_var", "upstream_uri"),
        ("kong.service.request.set_headers", {"X-Identity-Assertion": _ASSERTION}),
        ("kong.ctx.shared.set", "edge.subject", "bench-user"),
    ),
    "edge-rate-limit": (
        ("kong.ctx.shared.get", "edge.subject"),
        (
            "kong.response.set_headers",
            {
                "RateLimit-Policy": '"minute";q=1000000000;w=60',
                "RateLimit": '"minute";r=999999999;t=60',
            },
        ),
    ),
}


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        # Each call as the attribute path under ``kong`` and its arguments, split once.
        self.calls = [(method.split(".")[1:], args) for method, *args in CALLS[config["plugin"]]]

    def access(self, kong: Any) -> None:
        for path, args in self.calls:
            functools.reduce(getattr, path, kong)(*args)


class PluginWithLog(Plugin):
    def log(self, kong: Any) -> None:
        return None


if __name__ == "__main__":
    from edge_plugins.server import serve

    with_log = "--with-log" in sys.argv
    if with_log:
        sys.argv.remove("--with-log")
    serve(sys.modules[__name__], PluginWithLog if with_log else Plugin)
