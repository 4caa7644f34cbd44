"""A declarative configuration's errors: the error tree, Kong's one-line admin-API message
(penlight's ``pretty.write``) and the ``kong start`` rendering (``pretty_print_error`` in
``kong/db/declarative/init.lua``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

ErrorTree = dict[Any, Any]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _lua_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _lua_repr(value: Any) -> str:
    """Render like penlight's ``pretty.write(t, "")`` (Kong's admin-API error message)."""
    if isinstance(value, list):
        value = {i: v for i, v in enumerate(value, start=1)}
    if isinstance(value, dict):
        parts: list[str] = []
        n = 1
        while n in value:
            parts.append(_lua_repr(value[n]))
            n += 1
        rest_int = sorted(k for k in value if isinstance(k, int) and not 1 <= k < n)
        rest_str = sorted(k for k in value if not isinstance(k, int))
        for k in rest_int:
            parts.append(f"[{k}]={_lua_repr(value[k])}")
        for k in rest_str:
            key = k if _IDENT.fullmatch(k) else f"[{_lua_quote(k)}]"
            parts.append(f"{key}={_lua_repr(value[k])}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, str):
        return _lua_quote(value)
    return str(value)


def _pretty_lines(tree: Any, item: str, indent: str) -> list[str]:
    """``kong/db/declarative/init.lua`` ``pretty_print_error``."""
    if isinstance(tree, list):
        tree = {i: v for i, v in enumerate(tree, start=1)}
    lines: list[str] = []
    keys = sorted(k for k in tree if isinstance(k, int)) + sorted(
        (k for k in tree if not isinstance(k, int)), key=str
    )
    for k in keys:
        v = tree[k]
        key = f"- in entry {k} of '{item}'" if isinstance(k, int) else f"in '{k}'"
        if isinstance(v, dict | list):
            lines.append(f"{indent}{key}:")
            lines.extend(_pretty_lines(v, str(k), indent + "  "))
        else:
            lines.append(f"{indent}{key}: {v}")
    return lines


class DeclarativeConfigError(Exception):
    """The declarative configuration is invalid (or uses what the harness cannot do).

    ``message`` is Kong's admin-API message, ``fields`` the error tree (entity -> 1-based
    index or name -> field -> message), :meth:`pretty` the ``kong start`` rendering.
    """

    def __init__(self, message: str, fields: ErrorTree | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: ErrorTree = fields or {}

    @classmethod
    def from_tree(cls, tree: ErrorTree) -> DeclarativeConfigError:
        return cls(f"declarative config is invalid: {_lua_repr(tree)}", tree)

    def pretty(self) -> str:
        """Multi-line rendering (``pretty_print_error`` in ``kong/db/declarative/init.lua``)."""
        if not self.fields:
            return self.message
        return "\n".join(_pretty_lines(self.fields, "", ""))


class ErrorCollector:
    """Gathers every error of one load into the error tree before raising them together."""

    def __init__(self) -> None:
        self.tree: ErrorTree = {}

    def _node(self, path: Sequence[Any]) -> dict[Any, Any]:
        node = self.tree
        for key in path:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        return node

    def set(self, path: Sequence[Any], key: Any, message: Any) -> None:
        self._node(path)[key] = message

    def append(self, path: Sequence[Any], key: Any, message: str) -> None:
        node = self._node(path)
        existing = node.get(key)
        if isinstance(existing, list):
            existing.append(message)
        else:
            node[key] = [message]

    def raise_if_any(self) -> None:
        if self.tree:
            raise DeclarativeConfigError.from_tree(self.tree)
