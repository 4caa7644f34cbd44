"""Field definitions as a schema holds them: a record's ``(name, definition)`` pairs and
the definition at a dotted path (``Schema:each_field``, ``get_schema_field`` in
``kong/db/schema/init.lua``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kong_harness.schema.errors import BrokenSchema

Field = Mapping[str, Any]


def each_field(record: Field) -> list[tuple[str, dict[str, Any]]]:
    """``Schema:each_field``: the ``(name, definition)`` pairs of a record definition."""
    entries = record.get("fields")
    if not isinstance(entries, list):
        raise BrokenSchema("record without a fields array")
    pairs: list[tuple[str, dict[str, Any]]] = []
    for entry in entries:
        if isinstance(entry, dict) and entry:
            name, definition = next(iter(entry.items()))
            if isinstance(definition, dict):
                pairs.append((str(name), definition))
    return pairs


def get_schema_field(record: Field, name: str) -> Field | None:
    """``get_schema_field``: the definition at a dotted path."""
    head, _, tail = name.partition(".")
    try:
        field = dict(each_field(record)).get(head)
    except BrokenSchema:
        return None
    if field is None or not tail:
        return field
    return get_schema_field(field, tail)
