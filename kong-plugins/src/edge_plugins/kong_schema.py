"""A plugin's settings as one table: Kong's schema and the config parser both read it.

Each plugin's core package declares its fields once (``jwt/schema.py``,
``ratelimit/schema.py``, ``trace/schema.py``). The entry module hands Kong
:meth:`FieldTable.kong_schema` (kong-pdk's ``--dump`` prints it as ``Schema``; Kong checks
it against ``MetaSubSchema`` in kong/db/schema/metaschema.lua, which allows a
``description`` of 10 to 500 characters on every field), the core's ``from_kong`` takes
its defaults, ranges and choices from the same :class:`Field` objects, and
``python -m edge_plugins.reference`` writes them into docs/plugins/.

Only what the three plugins use is modelled: scalars, arrays of scalars or records, and
records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

KongType = Literal["string", "integer", "number", "boolean", "array", "record"]


@dataclass(frozen=True, slots=True)
class Field:
    """One setting: Kong's field attributes plus the text that documents it.

    ``default`` is ``None`` when Kong fills in nothing; array defaults are tuples (sent to
    Kong as lists). ``elements`` describes an array's items and ``fields`` a record's
    members (or the members of each item, for an array of records).
    """

    name: str
    type: KongType
    description: str = ""
    default: Any = None
    required: bool = False
    one_of: tuple[str, ...] | None = None
    between: tuple[float, float] | None = None
    len_min: int | None = None
    match: str | None = None
    not_match: str | None = None
    referenceable: bool = False
    elements: Field | None = None
    fields: tuple[Field, ...] = ()

    @property
    def low(self) -> Any:
        """The lower bound of ``between``."""
        return _bounds(self)[0]

    @property
    def high(self) -> Any:
        """The upper bound of ``between``."""
        return _bounds(self)[1]

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values (``one_of``) of a string, or of an array's items."""
        one_of = self.one_of if self.elements is None else self.elements.one_of
        if one_of is None:
            raise ValueError(f"{self.name} has no enumeration")
        return one_of

    def member(self, name: str) -> Field:
        """A member of this record (or of this array's records)."""
        members = self.fields or (self.elements.fields if self.elements is not None else ())
        for member in members:
            if member.name == name:
                return member
        raise KeyError(f"{self.name} has no member {name!r}")

    def definition(self) -> dict[str, Any]:
        """Kong's definition of this field (the value under its name in the schema)."""
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.required:
            out["required"] = True
        if self.default is not None:
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        for key in ("len_min", "match", "not_match"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.one_of is not None:
            out["one_of"] = list(self.one_of)
        if self.between is not None:
            out["between"] = list(self.between)
        if self.referenceable:
            out["referenceable"] = True
        if self.elements is not None:
            out["elements"] = self.elements.definition()
        if self.fields:
            out["fields"] = [{member.name: member.definition()} for member in self.fields]
        return out


def _bounds(field: Field) -> tuple[Any, Any]:
    if field.between is None:
        raise ValueError(f"{field.name} has no range")
    return field.between


def string_items(*, one_of: tuple[str, ...] | None = None) -> Field:
    """The items of an array of non-empty strings."""
    return Field("", "string", len_min=1, one_of=one_of)


class FieldTable:
    """A plugin's ``config`` fields, in the order Kong shows them."""

    def __init__(self, *fields: Field) -> None:
        self.fields = fields
        self._by_name = {field.name: field for field in fields}

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def kong_schema(self) -> tuple[dict[str, Any], ...]:
        """The entry module's ``Schema``: one ``{name: definition}`` per field."""
        return tuple({field.name: field.definition()} for field in self.fields)
