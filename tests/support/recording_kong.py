"""A stand-in for kong-pdk's ``kong`` object that records every PDK call in order.

Plugin entry tests drive ``Plugin.access(kong)`` with it to pin which PDK calls a request
makes (each is one RPC round trip to Kong) without a harness. ``answers`` maps a PDK
method (``"kong.client.get_forwarded_ip"``) to its return value, or to a callable taking
the call's arguments; a method without an answer returns ``None``, as Kong's ``nil``.

Only the PDK methods the harness answers exist (its PDK table, ``kong_harness.pdk.PDK``):
anything else, a misspelt ``kong.request.get_headr`` or an answer for one, raises
``AttributeError``, as the method would be missing through the gateway too.

Arguments are recorded as Kong receives them: cut at the first ``None``
(kong/runloop/plugin_servers/rpc/mp_rpc.lua calls the PDK with ``unpack(args)``, and the
argument table has a hole there), so a test sees what a call really carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kong_harness.pdk import PDK

# Every dotted prefix of a PDK method: the namespaces a plugin may walk through.
NAMESPACES = frozenset(
    method.rsplit(".", depth)[0] for method in PDK for depth in range(1, method.count("."))
)


class RecordingKong:
    def __init__(self, answers: Mapping[str, Any | Callable[..., Any]] | None = None) -> None:
        unknown = sorted(set(answers or {}) - set(PDK))
        if unknown:
            raise AttributeError(f"answers for methods the PDK does not have: {unknown}")
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers = dict(answers or {})
        outer = self

        class Node:
            def __init__(self, path: str) -> None:
                self._path = path

            def __getattr__(self, name: str) -> Any:
                path = f"{self._path}.{name}"
                if path not in PDK and path not in NAMESPACES:
                    raise AttributeError(f"{path} is not a PDK method (kong_harness.pdk.PDK)")
                return Node(path)

            def __call__(self, *args: Any) -> Any:
                if self._path not in PDK:
                    raise AttributeError(f"{self._path} is a PDK namespace, not a method")
                if None in args:
                    args = args[: args.index(None)]
                outer.calls.append((self._path, args))
                answer = outer.answers.get(self._path)
                return answer(*args) if callable(answer) else answer

        for name in sorted({method.split(".")[1] for method in PDK}):
            setattr(self, name, Node(f"kong.{name}"))

    @property
    def methods(self) -> list[str]:
        return [path for path, _ in self.calls]

    def args(self, method: str) -> tuple[Any, ...]:
        """The arguments of the first call to ``method``."""
        return next(args for path, args in self.calls if path == method)
