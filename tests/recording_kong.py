"""A stand-in for kong-pdk's ``kong`` object that records every PDK call in order.

Plugin entry tests drive ``Plugin.access(kong)`` with it to pin which PDK calls a request
makes (each is one RPC round trip to Kong) without a harness. ``answers`` maps a PDK
method (``"kong.client.get_forwarded_ip"``) to its return value, or to a callable taking
the call's arguments; unknown methods return ``None``, as Kong's ``nil``.

Arguments are recorded as Kong receives them: cut at the first ``None``
(kong/runloop/plugin_servers/rpc/mp_rpc.lua calls the PDK with ``unpack(args)``, and the
argument table has a hole there), so a test sees what a call really carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class RecordingKong:
    def __init__(self, answers: Mapping[str, Any | Callable[..., Any]] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers = dict(answers or {})
        outer = self

        class Node:
            def __init__(self, path: str) -> None:
                self._path = path

            def __getattr__(self, name: str) -> Any:
                return Node(f"{self._path}.{name}")

            def __call__(self, *args: Any) -> Any:
                if None in args:
                    args = args[: args.index(None)]
                outer.calls.append((self._path, args))
                answer = outer.answers.get(self._path)
                return answer(*args) if callable(answer) else answer

        for name in (
            "request",
            "service",
            "response",
            "client",
            "ctx",
            "router",
            "log",
            "nginx",
            "ip",
        ):
            setattr(self, name, Node(f"kong.{name}"))

    @property
    def methods(self) -> list[str]:
        return [path for path, _ in self.calls]

    def args(self, method: str) -> tuple[Any, ...]:
        """The arguments of the first call to ``method``."""
        return next(args for path, args in self.calls if path == method)
