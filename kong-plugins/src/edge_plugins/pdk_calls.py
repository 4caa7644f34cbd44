"""The PDK calls a plugin makes per request, declared next to each plugin.

Each PDK call is one MessagePack-RPC round trip between Kong and the plugin server, so
their number is a plugin's main cost. Every entry module lists its figures in
``PDK_CALLS``; docs/plugins/ is generated from them, and kong-plugins/tests/test_plugin_reference.py
replays a representative request for each and compares what a recording PDK saw.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PdkCalls:
    """The calls, in order, that one kind of request makes in one phase."""

    phase: str
    outcome: str
    calls: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.calls)
