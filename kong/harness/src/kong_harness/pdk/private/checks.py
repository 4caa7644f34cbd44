"""Argument checks: ``kong/pdk/private/checks.lua``."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import LuaError


def normalize_header_value(value: Any) -> list[str]:
    """``normalize_multi_header``: the header lines a value becomes (an empty one is a space)."""
    if isinstance(value, list):
        return [v if v != "" else " " for v in value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float):
        return [lua_number(value)]
    return [value if value != "" else " "]


def lua_number(value: int | float) -> str:
    """``tostring`` of a Lua number (an integral float prints as an integer)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lua_type(value: Any) -> str:
    """Lua's ``type()`` of a value as the plugin server sent it."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    return "table"


def validate_header(name: Any, value: Any) -> None:
    """``validate_header``: throws Kong's message for a bad name or value."""
    if not isinstance(name, str):
        raise LuaError(f'invalid header name "{name}": got {lua_type(name)}, expected string')
    if isinstance(value, list):
        for v in value:
            if not isinstance(v, str):
                raise LuaError(
                    f'invalid header value in array "{name}": got {lua_type(v)}, expected string'
                )
    elif not isinstance(value, str | int | float | bool):
        raise LuaError(
            f'invalid header value for "{name}": got {lua_type(value)}, expected array of '
            "string, string, number or boolean"
        )


def validate_headers(headers: Any) -> None:
    """``validate_headers``: a table of valid headers."""
    if not isinstance(headers, dict):
        raise LuaError("headers must be a table")
    for k, v in headers.items():
        validate_header(k, v)
