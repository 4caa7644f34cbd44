"""The errors the schema machinery raises, and Kong's one-line summary of them
(``kong/db/errors.lua``: ``schema_violation``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kong_harness.schema.lua import lua_tostring


class KongSchemaViolation(Exception):
    """Base of the errors the schema machinery raises; ``errors`` holds the details."""

    def __init__(self, message: str, errors: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.errors: dict[str, Any] = dict(errors)

    def __str__(self) -> str:
        return self.message


class SchemaError(KongSchemaViolation):
    """A plugin schema that Kong would refuse to load.

    ``errors`` maps a dotted path (``config.greeting.default``; ``elements``/``keys``/
    ``values`` name the nested definitions, ``fields.N`` an entry without a usable name) to
    Kong's message. Kong itself reports metaschema errors by array index
    (``kong/db/errors.lua``: ``schema_violation``); naming the field is this harness's addition.
    """


class ConfigError(KongSchemaViolation):
    """A plugin config that violates the plugin's schema (``kong/db/schema/init.lua``).

    ``errors`` has Kong's shape: ``{"config": {"greeting": "expected a string"}}``; array and
    set items are keyed by their 1-based position as a string; entity-check messages are listed
    under ``"@entity"``. ``str()`` is Kong's one-line ``schema violation (...)`` summary
    (``kong/db/errors.lua``), with deeper levels flattened to dotted paths where Kong would
    pretty-print a Lua table.
    """

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(violation_summary(_flatten_errors(errors)), errors)


class BrokenSchema(Exception):
    """A definition the engine cannot validate against (Kong hits a Lua error there)."""


def join_path(path: str, name: str) -> str:
    """The dotted path of ``name`` under ``path``."""
    return f"{path}.{name}" if path else name


def error_path_key(key: str) -> tuple[int, int, str]:
    """Sort key of an error-tree key: array positions in numeric order, then names."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _flatten_errors(errors: Any, path: str = "") -> list[tuple[str, str]]:
    """``(path, message)`` pairs: ``@entity`` messages first, then keys in sorted order."""
    if isinstance(errors, str):
        return [(path, errors)]
    if isinstance(errors, list):
        return [(path, str(message)) for message in errors]
    if not isinstance(errors, Mapping):
        return [(path, lua_tostring(errors))]
    pairs = []
    if "@entity" in errors:
        pairs += _flatten_errors(errors["@entity"], path)
    for key in sorted((str(k) for k in errors if k != "@entity"), key=error_path_key):
        pairs += _flatten_errors(errors[key], join_path(path, key))
    return pairs


def violation_summary(pairs: list[tuple[str, str]]) -> str:
    """Kong's one-line ``schema violation (...)`` message."""
    parts = [f"{path}: {message}" if path else message for path, message in pairs]
    if len(parts) == 1:
        return f"schema violation ({parts[0]})"
    return f"{len(parts)} schema violations ({'; '.join(parts)})"
