"""Kong's schema machinery for external (plugin-server) plugins, reimplemented in Python.

Kong loads an external plugin's schema from the plugin server's ``--dump`` output
(``kong/runloop/plugin_servers/process.lua``: ``schema = info.Schema``) and validates it in
``kong/db/schema/plugin_loader.lua`` (``load_subschema``) with
``MetaSchema.MetaSubSchema:validate`` from ``kong/db/schema/metaschema.lua`` before turning it
into a sub-schema of the ``plugins`` entity (``kong/db/schema/entity.lua``:
``Entity.new_subschema`` → ``kong/db/schema/init.lua``: ``Schema.new_subschema``). A plugin's
``config`` from the declarative ``kong.yml`` is then run through
``Schema:process_auto_fields(..., "insert")`` and ``Schema:validate`` (``kong/db/schema/init.lua``;
``kong/db/schema/others/declarative_config.lua`` does this for every plugin entry).

This module reproduces that, with one validation engine used both ways, as Kong does:

* :func:`validate_plugin_schema` validates a ``Schema`` value against a Python rendering of
  ``MetaSubSchema`` plus its ``check`` function (``check_fields`` / ``check_field``) and the
  sub-schema rules of ``Schema.new_subschema``. Raises :class:`SchemaError`.
* :func:`process_config` fills defaults and validates a config. Raises :class:`ConfigError`
  whose ``errors`` has Kong's nested shape, e.g. ``{"config": {"limits": {"1": {...}}}}``.
* :func:`select_config` is Kong's *read* path (``process_auto_fields(..., "select")`` without
  ``nulls``), which is what the runloop hands to a plugin server: see its docstring.

Lua values map to Python as: Lua ``nil`` (absent) → key missing; ``ngx.null`` → ``None``;
tables → ``dict``/``list`` (an empty ``dict`` and an empty ``list`` are the same Lua table, so
each is accepted where the other is expected); numbers → ``int``/``float`` (never ``bool``).
Error strings are Kong's, verbatim, from ``validation_errors`` in ``kong/db/schema/init.lua``
and ``meta_errors`` in ``kong/db/schema/metaschema.lua``.

Deliberately not reproduced (each would need Kong internals the harness does not have):
``json``-typed fields are accepted without JSON-schema validation; ``foreign`` values only get
their ``id`` primary key checked; ``shorthand_fields``/``transformations``/``check`` (all need
Lua functions, so an external plugin can never declare them) are rejected by the metaschema
exactly as in Kong, but never executed; vault references in ``referenceable`` fields are
resolved on select for the ``env`` vault only (kong_harness.vault); ``deprecation``
warnings, ``immutable`` (updates only) and ``unique`` (a database constraint) have no
effect; ``is_regex`` compiles with Python's ``re`` rather than PCRE; Lua patterns
support the subset described in :func:`lua_match`.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from kong_harness.vault import is_reference, resolve_reference

__all__ = [
    "ConfigError",
    "KongSchemaViolation",
    "LuaPatternError",
    "SchemaError",
    "UnsupportedLuaPattern",
    "config_fields_of",
    "lua_match",
    "process_config",
    "select_config",
    "validate_plugin_schema",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class KongSchemaViolation(Exception):
    """Base of the errors this module raises; ``errors`` holds the details."""

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
        super().__init__(_violation_summary(_flatten_errors(errors)), errors)


class LuaPatternError(ValueError):
    """A Lua pattern Lua itself would reject (``malformed pattern ...``)."""


class UnsupportedLuaPattern(LuaPatternError):
    """A valid Lua pattern using a construct :func:`lua_match` does not translate."""


class _BrokenSchema(Exception):
    """A definition the engine cannot validate against (Kong hits a Lua error there)."""


# --------------------------------------------------------------------------------------------
# Kong's messages (kong/db/schema/init.lua: validation_errors; metaschema.lua: meta_errors)
# --------------------------------------------------------------------------------------------

ARRAY: Final = "expected an array"
SET: Final = "expected a set"
MAP: Final = "expected a map"
RECORD: Final = "expected a record"
STRING: Final = "expected a string"
NUMBER: Final = "expected a number"
BOOLEAN: Final = "expected a boolean"
INTEGER: Final = "expected an integer"
FUNCTION: Final = "expected a function"
EQ: Final = "value must be %s"
NE: Final = "value must not be %s"
GT: Final = "value must be greater than %s"
BETWEEN: Final = "value should be between %d and %d"
LEN_EQ: Final = "length must be %d"
LEN_MIN: Final = "length must be at least %d"
LEN_MAX: Final = "length must be at most %d"
INVALID_VALUE: Final = "invalid value: %s"  # MATCH, NOT_MATCH, MATCH_ALL, MATCH_NONE, MATCH_ANY
STARTS_WITH: Final = "should start with: %s"
CONTAINS: Final = "expected to contain: %s"
ONE_OF: Final = "expected one of: %s"
NOT_ONE_OF: Final = "must not be one of: %s"
IS_REGEX: Final = "not a valid regex: %s"
TIMESTAMP: Final = "expected a valid timestamp"
UUID: Final = "expected a valid UUID"
VALIDATION: Final = "failed validating: %s"
BAD_INPUT: Final = "expected an input table"
REQUIRED: Final = "required field missing"
UNKNOWN: Final = "unknown field"
REQUIRED_FOR_ENTITY_CHECK: Final = "field required for entity check"
ENTITY_CHECK: Final = "failed entity check: %s(%s)"
CONDITIONAL: Final = "failed conditional validation given value of field '%s'"
AT_LEAST_ONE_OF: Final = "at least one of these fields must be non-empty: %s"
ONLY_ONE_OF: Final = "exactly one of these fields must be non-empty: %s"
DISTINCT: Final = "values of these fields must be distinct: %s"
MUTUALLY_REQUIRED: Final = "all or none of these fields must be set: %s"
MUTUALLY_EXCLUSIVE: Final = "only one or none of these fields must be set: %s"
MUTUALLY_EXCLUSIVE_SETS: Final = "these sets are mutually exclusive: %s"
SCHEMA_BAD_REFERENCE: Final = "schema refers to an invalid foreign entity: %s"
SCHEMA_CANNOT_VALIDATE: Final = "error in schema prevents from validating this field"
SCHEMA_NO_FIELDS: Final = "error in schema definition: no 'fields' table"
SCHEMA_TYPE: Final = "invalid type: %s"
MISSING_PK: Final = "missing primary key"
SUBSCHEMA_BAD_TYPE: Final = (
    "error in definition of '%s': %s: cannot change type in a specialized field"
)
SUBSCHEMA_BAD_FIELD: Final = "error in definition of '%s': %s: cannot create a new field"
SUBSCHEMA_ABSTRACT_FIELD: Final = "error in schema definition: abstract field was not specialized"

META_ATTRIBUTE: Final = "field of type '%s' cannot have attribute '%s'"
META_REQUIRED: Final = "field of type '%s' must declare '%s'"
META_TABLE: Final = "'%s' must be a table"
META_TYPE: Final = "missing type declaration"
META_FIELD_EMPTY: Final = "field entry table is empty"
META_FIELDS_ARRAY: Final = "each entry in fields must be a sub-table"
META_JSON_PARENT_KEY: Final = "value must be a field name of the parent schema"
META_JSON_PARENT_KEY_TYPE: Final = "value must be a string field of the parent schema"

#: ``Schema.valid_types`` (kong/db/schema/init.lua), in source order.
VALID_TYPES: Final = (
    "array",
    "set",
    "string",
    "number",
    "boolean",
    "integer",
    "foreign",
    "map",
    "record",
    "function",
    "json",
)

#: ``plugin_loader.load_subschema`` prefixes ``Entity.new_subschema`` failures with this.
_SUBSCHEMA_INIT_PREFIX: Final = "error initializing schema for plugin: "


# --------------------------------------------------------------------------------------------
# Lua value helpers
# --------------------------------------------------------------------------------------------


class _Missing:
    """Lua ``nil``: a key that is absent (``None`` is ``ngx.null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "nil"


_MISSING: Final = _Missing()


def _is_number(value: object) -> bool:
    """Lua ``type(v) == "number"`` (a Python ``bool`` is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_table(value: object) -> bool:
    return isinstance(value, dict | list)


def _lua_tostring(value: object) -> str:
    """LuaJIT's ``tostring`` for the values a JSON schema can hold (numbers use ``%.14g``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return format(float(value), ".14g")  # type: ignore[arg-type]
    if isinstance(value, str):
        return value
    return f"table: 0x{id(value):08x}"


def _lua_int(value: object) -> str:
    """``string.format("%d", n)`` in LuaJIT: truncates toward zero."""
    if _is_number(value) and math.isfinite(value):  # type: ignore[arg-type]
        return str(int(value))  # type: ignore[call-overload]
    return _lua_tostring(value)


def _lua_eq(a: object, b: object) -> bool:
    """Lua ``==``: same type and value; tables only equal themselves; ``1 == 1.0``."""
    if a is b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _lua_key(value: object) -> tuple[str, object]:
    """What Lua uses as a table key: tables by identity, numbers normalised (``1 == 1.0``)."""
    if isinstance(value, bool):
        return ("boolean", value)
    if _is_number(value):
        return ("number", float(value))  # type: ignore[arg-type]
    if isinstance(value, str):
        return ("string", value)
    return ("table", id(value))


def _is_nonempty(value: object) -> bool:
    """``is_nonempty`` in kong/db/schema/init.lua: not nil/null, not ``{}``, not ``""``."""
    if value is _MISSING or value is None:
        return False
    if _is_table(value) and not value:
        return False
    return value != ""


def _quoted_list(words: Iterable[object]) -> str:
    """``quoted_list`` in kong/db/schema/init.lua: ``'a', 'b'``, nested lists in parentheses."""
    parts = []
    for word in words:
        if isinstance(word, list):
            parts.append(f"({_quoted_list(word)})")
        else:
            parts.append(f"'{_lua_tostring(word)}'")
    return ", ".join(parts)


def _lua_len(value: object, field: Mapping[str, Any]) -> int | None:
    """``#value`` (+ the pair count for maps), as ``make_length_validator`` computes it.

    Strings are measured in bytes, as Lua does. ``None`` when Lua would raise.
    """
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return len(value) if field.get("type") == "map" else 0
    return None


def _random_string() -> str:
    """``kong.tools.rand.random_string``: 32 alphanumeric characters."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


# --------------------------------------------------------------------------------------------
# Lua patterns (string.match), translated to byte regular expressions
# --------------------------------------------------------------------------------------------

_ALL_BYTES: Final = frozenset(range(256))


def _byte_ranges(*spans: tuple[int, int]) -> frozenset[int]:
    return frozenset(b for lo, hi in spans for b in range(lo, hi + 1))


# C-locale ctype classes, as lstrlib.c's match_class uses them (%z is LuaJIT's Lua 5.1 "\0").
_LUA_CLASSES: Final[dict[str, frozenset[int]]] = {
    "a": _byte_ranges((65, 90), (97, 122)),
    "c": _byte_ranges((0, 31), (127, 127)),
    "d": _byte_ranges((48, 57)),
    "g": _byte_ranges((33, 126)),
    "l": _byte_ranges((97, 122)),
    "p": _byte_ranges((33, 47), (58, 64), (91, 96), (123, 126)),
    "s": _byte_ranges((9, 13), (32, 32)),
    "u": _byte_ranges((65, 90)),
    "w": _byte_ranges((48, 57), (65, 90), (97, 122)),
    "x": _byte_ranges((48, 57), (65, 70), (97, 102)),
    "z": frozenset({0}),
}


def _lua_class(letter: int) -> frozenset[int] | None:
    char = chr(letter)
    if char in _LUA_CLASSES:
        return _LUA_CLASSES[char]
    if char.lower() in _LUA_CLASSES and char.isupper():
        return _ALL_BYTES - _LUA_CLASSES[char.lower()]
    return None


def _byte_set_regex(members: frozenset[int]) -> bytes:
    if len(members) == 1:
        return re.escape(bytes(members))
    if not members:
        return rb"(?!)"
    ordered = sorted(members)
    parts: list[bytes] = []
    start = prev = ordered[0]
    for b in [*ordered[1:], -1]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        start = prev = b
    return b"[" + b"".join(parts) + b"]"


def _parse_lua_set(pat: bytes, i: int) -> tuple[frozenset[int], int]:
    """``[set]`` starting at ``pat[i] == '['``; returns the bytes it matches and the next index."""
    n = len(pat)
    j = i + 1
    negate = j < n and pat[j] == ord("^")
    if negate:
        j += 1
    members: set[int] = set()
    first = True
    while True:
        if j >= n:
            raise LuaPatternError("malformed pattern (missing ']')")
        c = pat[j]
        if c == ord("]") and not first:
            j += 1
            break
        first = False
        if c == ord("%"):
            if j + 1 >= n:
                raise LuaPatternError("malformed pattern (missing ']')")
            cls = _lua_class(pat[j + 1])
            members |= cls if cls is not None else {pat[j + 1]}
            j += 2
        elif j + 2 < n and pat[j + 1] == ord("-") and pat[j + 2] != ord("]"):
            members |= set(range(c, pat[j + 2] + 1))
            j += 3
        else:
            members.add(c)
            j += 1
    result = frozenset(members)
    return (_ALL_BYTES - result if negate else result), j


def _parse_lua_single(pat: bytes, i: int) -> tuple[frozenset[int], int]:
    """One single-character class (``.``, ``%x``, ``[set]`` or a literal byte)."""
    c = pat[i]
    if c == ord("."):
        return _ALL_BYTES, i + 1
    if c == ord("%"):
        if i + 1 >= len(pat):
            raise LuaPatternError("malformed pattern (ends with '%')")
        cls = _lua_class(pat[i + 1])
        return (cls if cls is not None else frozenset({pat[i + 1]})), i + 2
    if c == ord("["):
        return _parse_lua_set(pat, i)
    return frozenset({c}), i + 1


_QUANTIFIERS: Final = {ord("*"): b"*", ord("+"): b"+", ord("-"): b"*?", ord("?"): b"?"}


@lru_cache(maxsize=1024)
def _compile_lua_pattern(pattern: str) -> re.Pattern[bytes]:
    pat = pattern.encode("utf-8")
    n = len(pat)
    out: list[bytes] = []
    i = 0
    if pat[:1] == b"^":
        out.append(rb"\A")
        i = 1
    open_captures: list[int] = []
    closed_captures: set[int] = set()
    count = 0
    while i < n:
        c = pat[i]
        if c == ord("("):
            count += 1
            open_captures.append(count)
            out.append(b"(")
            i += 1
            continue
        if c == ord(")"):
            if not open_captures:
                raise LuaPatternError("invalid pattern capture")
            closed_captures.add(open_captures.pop())
            out.append(b")")
            i += 1
            continue
        if c == ord("$") and i == n - 1:
            out.append(rb"\Z")
            i += 1
            continue
        if c == ord("%") and i + 1 < n:
            nxt = chr(pat[i + 1])
            if nxt in "bf":
                raise UnsupportedLuaPattern(
                    f"Lua pattern item %{nxt} is not supported: {pattern!r}"
                )
            if nxt.isdigit():
                index = int(nxt)
                if index not in closed_captures:
                    raise LuaPatternError(f"invalid capture index %{index}")
                out.append(b"(?:\\%d)" % index)
                i += 2
                continue
        members, i = _parse_lua_single(pat, i)
        item = _byte_set_regex(members)
        if i < n and pat[i] in _QUANTIFIERS:
            item += _QUANTIFIERS[pat[i]]
            i += 1
        out.append(item)
    if open_captures:
        raise LuaPatternError("unfinished capture")
    return re.compile(b"".join(out))


def lua_match(subject: str, pattern: str) -> bool:
    """Whether Lua's ``subject:match(pattern)`` finds a match (Kong's ``match`` validators).

    Lua patterns work on bytes, so the subject is matched as UTF-8 bytes: ``.`` is one byte
    and ``%a`` etc. are the ASCII (C locale) classes. Supported: ``.``, ``%a %c %d %g %l %p
    %s %u %w %x %z`` and their upper-case complements, ``%`` escapes of other characters,
    ``[sets]`` with ranges, classes and ``^`` negation, the quantifiers ``* + - ?`` (``-`` is
    the lazy ``*``), ``^`` and ``$`` anchors (only at the pattern's ends, literal elsewhere),
    captures ``( )`` and back-references ``%1``-``%9``. Not supported: the balance item
    ``%b`` and the frontier ``%f``, which raise :class:`UnsupportedLuaPattern`. Patterns Lua
    would reject raise :class:`LuaPatternError`.
    """
    return _compile_lua_pattern(pattern).search(subject.encode("utf-8")) is not None


# --------------------------------------------------------------------------------------------
# Field validators (Schema.validators and Schema.validators_order, kong/db/schema/init.lua)
# --------------------------------------------------------------------------------------------

_Outcome = tuple[bool, str | None]


def _v_between(value: Any, limits: Any, _field: Mapping[str, Any]) -> _Outcome:
    if value < limits[0] or value > limits[1]:
        return False, BETWEEN.replace("%d", _lua_int(limits[0]), 1).replace(
            "%d", _lua_int(limits[1]), 1
        )
    return True, None


def _v_eq(value: Any, wanted: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (True, None) if _lua_eq(value, wanted) else (False, EQ % _lua_tostring(wanted))


def _v_ne(value: Any, wanted: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (False, NE % _lua_tostring(value)) if _lua_eq(value, wanted) else (True, None)


def _v_gt(value: Any, limit: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (True, None) if value > limit else (False, GT % _lua_tostring(limit))


def _length_validator(template: str, ok: Callable[[int, Any], bool]) -> Callable[..., _Outcome]:
    def validate(value: Any, n: Any, field: Mapping[str, Any]) -> _Outcome:
        length = _lua_len(value, field)
        if length is None or ok(length, n):
            return True, None
        return False, template.replace("%d", _lua_int(n))

    return validate


def _v_match(value: Any, pattern: Any, _field: Mapping[str, Any]) -> _Outcome:
    if not isinstance(value, str) or lua_match(value, pattern):
        return True, None
    return False, INVALID_VALUE % value


def _v_not_match(value: Any, pattern: Any, _field: Mapping[str, Any]) -> _Outcome:
    if isinstance(value, str) and lua_match(value, pattern):
        return False, INVALID_VALUE % value
    return True, None


def _v_match_all(value: Any, rules: Any, _field: Mapping[str, Any]) -> _Outcome:
    for rule in rules:
        if isinstance(value, str) and not lua_match(value, rule["pattern"]):
            return False, rule.get("err")
    return True, None


def _v_match_none(value: Any, rules: Any, _field: Mapping[str, Any]) -> _Outcome:
    for rule in rules:
        if isinstance(value, str) and lua_match(value, rule["pattern"]):
            return False, rule.get("err")
    return True, None


def _v_match_any(value: Any, arg: Any, _field: Mapping[str, Any]) -> _Outcome:
    if not isinstance(value, str):
        return True, None
    if any(lua_match(value, p) for p in arg["patterns"]):
        return True, None
    return False, arg.get("err")


def _v_starts_with(value: Any, prefix: Any, _field: Mapping[str, Any]) -> _Outcome:
    if isinstance(value, str) and not value.encode().startswith(str(prefix).encode()):
        return False, STARTS_WITH % prefix
    return True, None


def _v_one_of(value: Any, options: Any, _field: Mapping[str, Any]) -> _Outcome:
    if any(_lua_eq(value, option) for option in options):
        return True, None
    return False, ONE_OF % ", ".join(_lua_tostring(o) for o in options)


def _v_not_one_of(value: Any, options: Any, _field: Mapping[str, Any]) -> _Outcome:
    if any(_lua_eq(value, option) for option in options):
        return False, NOT_ONE_OF % ", ".join(_lua_tostring(o) for o in options)
    return True, None


def _v_timestamp(value: Any, _arg: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (True, None) if value > 0 else (False, None)


_UUID_RE: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII
)


def _v_uuid(value: Any, _arg: Any, _field: Mapping[str, Any]) -> _Outcome:
    ok = isinstance(value, str) and len(value) == 36 and _UUID_RE.fullmatch(value) is not None
    return ok, None


def _v_is_regex(value: Any, _arg: Any, _field: Mapping[str, Any]) -> _Outcome:
    """Kong compiles with PCRE (``ngx.re.match``); Python's ``re`` is the approximation."""
    try:
        re.compile(value)
    except (re.error, TypeError):
        return False, None
    return True, None


def _v_contains(value: Any, wanted: Any, _field: Mapping[str, Any]) -> _Outcome:
    if isinstance(value, list) and any(_lua_eq(item, wanted) for item in value):
        return True, None
    return False, CONTAINS % _lua_tostring(wanted)


def _v_mutually_exclusive_subsets(value: Any, subsets: Any, _field: Mapping[str, Any]) -> _Outcome:
    owner: dict[tuple[str, object], int] = {}
    for index, subset in enumerate(subsets):
        for item in subset:
            owner[_lua_key(item)] = index
    member_of: list[int] = []
    for item in value if isinstance(value, list) else []:
        index = owner.get(_lua_key(item))
        if index is not None and index not in member_of:
            member_of.append(index)
    if len(member_of) <= 1:
        return True, None
    return False, MUTUALLY_EXCLUSIVE_SETS % _quoted_list([subsets[i] for i in member_of])


def _v_custom_validator(value: Any, fn: Any, _field: Mapping[str, Any]) -> _Outcome:
    """Only reachable from this module's own metaschema: JSON cannot carry a function."""
    result = fn(value)
    if isinstance(result, tuple):
        return bool(result[0]), result[1] if len(result) > 1 else None
    return bool(result), None


_VALIDATORS: Final[dict[str, Callable[[Any, Any, Mapping[str, Any]], _Outcome]]] = {
    "eq": _v_eq,
    "ne": _v_ne,
    "not_one_of": _v_not_one_of,
    "one_of": _v_one_of,
    "gt": _v_gt,
    "timestamp": _v_timestamp,
    "uuid": _v_uuid,
    "is_regex": _v_is_regex,
    "between": _v_between,
    "len_eq": _length_validator(LEN_EQ, lambda length, n: length == n),
    "len_min": _length_validator(LEN_MIN, lambda length, n: length >= n),
    "len_max": _length_validator(LEN_MAX, lambda length, n: length <= n),
    "starts_with": _v_starts_with,
    "not_match": _v_not_match,
    "match_none": _v_match_none,
    "match": _v_match,
    "match_all": _v_match_all,
    "match_any": _v_match_any,
    "contains": _v_contains,
    "custom_validator": _v_custom_validator,
    "mutually_exclusive_subsets": _v_mutually_exclusive_subsets,
}  # insertion order is Schema.validators_order

# The message used when a validator fails without one: validation_errors[NAME:upper()].
_DEFAULT_VALIDATOR_ERRORS: Final = {
    "match": INVALID_VALUE,
    "not_match": INVALID_VALUE,
    "match_all": INVALID_VALUE,
    "match_none": INVALID_VALUE,
    "match_any": INVALID_VALUE,
    "is_regex": IS_REGEX,
    "timestamp": TIMESTAMP,
    "uuid": UUID,
}


# --------------------------------------------------------------------------------------------
# The engine: Schema:process_auto_fields and Schema:validate (kong/db/schema/init.lua)
# --------------------------------------------------------------------------------------------

Field = Mapping[str, Any]


def _fields(record: Field) -> list[tuple[str, Field]]:
    """``Schema:each_field``: the ``(name, definition)`` pairs of a record definition."""
    entries = record.get("fields")
    if not isinstance(entries, list):
        raise _BrokenSchema("record without a fields array")
    pairs = []
    for entry in entries:
        if isinstance(entry, dict) and entry:
            name, definition = next(iter(entry.items()))
            if isinstance(definition, dict):
                pairs.append((str(name), definition))
    return pairs


def _as_lua_table(value: Any, keyed: str) -> Any:
    """A JSON array where a record/map is expected: Lua sees a table with keys 1..n."""
    if isinstance(value, list):
        return {(str(i) if keyed == "record" else i): v for i, v in enumerate(value, 1)}
    return value


def _dedupe(items: list[Any]) -> list[Any]:
    """``make_set``: drop repeated values, keeping first occurrences."""
    seen: set[tuple[str, object]] = set()
    out = []
    for item in items:
        key = _lua_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _auto_value(name: str, field: Field, value: Any) -> Any:
    """The ``auto = true`` branch of ``process_auto_fields`` for an insert."""
    if field.get("uuid"):
        return str(uuid.uuid4()) if value is _MISSING else value
    ftype = field.get("type")
    if ftype == "string":
        return _random_string() if value is _MISSING else value
    if (name == "created_at" and value in (_MISSING, None)) or name == "updated_at":
        if ftype == "number":
            return time.time()
        if ftype == "integer":
            return int(time.time())
    return value


def _handle_missing(field: Field) -> Any:
    """``handle_missing_field``: default, else nil (nilable), null (optional) or sub-defaults."""
    if "default" in field:
        default = copy.deepcopy(field["default"])
        if field.get("type") in ("array", "set") and default == {}:
            return []
        return default
    if field.get("nilable"):
        return _MISSING
    if field.get("required") is not True:
        return None
    if field.get("abstract"):
        return _MISSING
    if field.get("type") == "record":
        return _process_record(field, {})
    return _MISSING


def _adjust(field: Field, value: Any) -> Any:
    """``adjust_field_for_context`` for the ``insert`` context."""
    if field.get("abstract"):
        return value
    ftype = field.get("type")
    if ftype == "record":
        if value is not None and (value is not _MISSING or field.get("required") is True):
            if value is _MISSING:
                value = _handle_missing(field)
            value = _as_lua_table(value, "record")
            if isinstance(value, dict):
                return _process_record(field, value)
    elif _is_table(value):
        sub = None
        if ftype in ("array", "set"):
            if value == {}:
                value = []
            if ftype == "set" and isinstance(value, list):
                value = _dedupe(value)
            sub = field.get("elements")
        elif ftype == "map":
            value = _as_lua_table(value, "map")
            sub = field.get("values")
        if isinstance(sub, dict):
            if isinstance(value, list):
                value = [_adjust(sub, item) for item in value]
            else:
                value = {k: _adjust(sub, v) for k, v in value.items()}
    if value is _MISSING:
        return _handle_missing(field)
    return value


def _process_record(record: Field, data: Mapping[str, Any]) -> dict[str, Any]:
    """``Schema:process_auto_fields(data, "insert")``: auto values, defaults, nulls.

    Returns a new dict; unknown keys are kept (``validate`` reports them).
    """
    out = copy.deepcopy(dict(data))
    for name, field in _fields(record):
        value = out.get(name, _MISSING)
        if field.get("auto"):
            value = _auto_value(name, field, value)
        value = _adjust(field, value)
        if value is _MISSING:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _validate_items(field: Field, items: list[Any]) -> dict[str, Any] | None:
    """``validate_elements``: each item against ``elements`` made required; keyed 1..n."""
    elements = field.get("elements")
    if not isinstance(elements, dict):
        raise _BrokenSchema("array without elements")
    required = {**elements, "required": True}
    errors = {}
    for index, item in enumerate(items, 1):
        err = _validate_field(required, item)
        if err is not None:
            errors[str(index)] = err
    return errors or None


def _validate_foreign(value: Any) -> Any:
    """``validate_primary_key`` of the referenced entity; every core entity's key is ``id``."""
    pk = value.get("id", _MISSING) if isinstance(value, dict) else _MISSING
    if pk is _MISSING or pk is False:
        return {"id": MISSING_PK}
    if pk is None:
        return {"id": REQUIRED}
    err = _validate_field({"type": "string", "uuid": True}, pk)
    return {"id": err} if err is not None else None


def _validate_type(field: Field, value: Any) -> tuple[Any, Field]:
    """The type part of ``Schema:validate_field``.

    Returns ``(error, field)``; the field may come back amended (strings get ``len_min = 1``)
    and the error may be the sentinel ``_MISSING`` for "valid, skip the validators".
    """
    ftype = field.get("type")
    if ftype in ("array", "set"):
        if value == {}:
            value = []
        if not isinstance(value, list):
            return (ARRAY if ftype == "array" else SET), field
        return _validate_items(field, value), field
    if ftype == "map":
        value = _as_lua_table(value, "map")
        if not isinstance(value, dict):
            return MAP, field
        keys, values = field.get("keys"), field.get("values")
        if not isinstance(keys, dict) or not isinstance(values, dict):
            raise _BrokenSchema("map without keys/values")
        for k, v in value.items():
            err = _validate_field({**keys, "required": True}, k)
            if err is None:
                err = _validate_field({**values, "required": True}, v)
            if err is not None:
                return err, field
        return None, field
    if ftype == "record":
        value = _as_lua_table(value, "record")
        if not isinstance(value, dict):
            return RECORD, field
        errors = _validate_record(field, _process_record(field, value))
        return errors or None, field
    if ftype == "foreign":
        return _validate_foreign(value), field
    if ftype == "integer":
        ok = _is_number(value) and (isinstance(value, int) or float(value).is_integer())
        return (None if ok else INTEGER), field
    if ftype == "string":
        if not isinstance(value, str):
            return STRING, field
        if "len_min" not in field:
            field = {**field, "len_min": 1}  # empty strings are not accepted by default
        if field.get("referenceable") and is_reference(value):
            return _MISSING, field
        return None, field
    if ftype == "number":
        return (None if _is_number(value) else NUMBER), field
    if ftype == "boolean":
        return (None if isinstance(value, bool) else BOOLEAN), field
    if ftype == "function":
        return (None if callable(value) else FUNCTION), field
    if ftype in ("json", "any"):
        # json: validate_field returns (nil, validation_errors.JSON == nil), i.e. no error;
        # json fields of a record go through validate_json_field, see _validate_record.
        return None, field
    return SCHEMA_TYPE % _lua_tostring(ftype), field


def _validate_field(field: Field, value: Any) -> Any:
    """``Schema:validate_field``: ``None`` when valid, else a message or a nested error table."""
    if value is _MISSING:  # only a conditional entity check can ask this; never valid
        return REQUIRED
    if value is None:
        if "ne" in field and field["ne"] is None:
            return field.get("err") or NE % "null"
        if field.get("eq") is not None:
            return EQ % _lua_tostring(field["eq"])
        if field.get("required"):
            return REQUIRED
        return None
    if "eq" in field and field["eq"] is None:
        return field.get("err") or EQ % "null"
    if field.get("abstract"):
        return SUBSCHEMA_ABSTRACT_FIELD
    err, field = _validate_type(field, value)
    if err is _MISSING:
        return None
    if err is not None:
        return err
    for name, validator in _VALIDATORS.items():
        arg = field.get(name)
        if arg is None:
            continue
        ok, message = validator(value, arg, field)
        if not ok:
            if message is None:
                template = _DEFAULT_VALIDATOR_ERRORS.get(name, VALIDATION)
                message = template.replace("%s", _lua_tostring(value))
            return field.get("err") or message
    return None


def _validate_record(
    record: Field, data: Mapping[str, Any], full_check: bool = True
) -> dict[str, Any]:
    """``Schema:validate`` (``validate_fields``, required fields, entity checks)."""
    errors: dict[str, Any] = {}
    by_name = dict(_fields(record))
    for key, value in data.items():
        name = str(key)
        field = by_name.get(name)
        if field is not None and field.get("type") == "json":
            continue  # validate_json_field: JSON-schema validation is not reproduced
        if field is not None and field.get("type") == "self":
            # metaschema 'default = { type = "self" }': the value must validate against the
            # very field definition being checked (run under pcall in Kong)
            try:
                err = _validate_field(data, value)
            except UnsupportedLuaPattern:
                raise
            except (
                _BrokenSchema,
                LuaPatternError,
                TypeError,
                ValueError,
                KeyError,
                AttributeError,
                IndexError,
            ):
                err = SCHEMA_CANNOT_VALIDATE
        elif name == "updated_at" or (name == "ttl" and record.get("ttl")):
            continue  # Schema.new: unvalidated_fields
        elif field is None:
            err = UNKNOWN
        else:
            err = _validate_field(field, value)
        if err is not None:
            errors[name] = err
    for name, field in by_name.items():
        value = data.get(name, _MISSING)
        if field.get("required") and (value is None or (full_check and value is _MISSING)):
            errors[name] = REQUIRED
    _run_entity_checks(record, data, record.get("entity_checks"), full_check, errors)
    return errors


# --------------------------------------------------------------------------------------------
# Entity checks (Schema.entity_checkers and run_entity_check, kong/db/schema/init.lua)
# --------------------------------------------------------------------------------------------


def _get_path(data: Any, name: str) -> Any:
    """``get_field``: ``"a.b"`` → ``data["a"]["b"]``; ``_MISSING`` for Lua nil."""
    head, _, tail = name.partition(".")
    if not isinstance(data, dict):
        return _MISSING
    value = data.get(head, _MISSING)
    if not tail:
        return value
    if value is None or value is _MISSING:
        return _MISSING
    return _get_path(value, tail)


def _set_path(target: dict[str, Any], name: str, value: Any) -> None:
    """``set_field``: creates the intermediate tables."""
    head, _, tail = name.partition(".")
    if not tail:
        target[head] = value
        return
    sub = target.setdefault(head, {})
    if isinstance(sub, dict):
        _set_path(sub, tail, value)


def _get_schema_field(record: Field, name: str) -> Field | None:
    """``get_schema_field``: the definition at a dotted path."""
    head, _, tail = name.partition(".")
    try:
        field = dict(_fields(record)).get(head)
    except _BrokenSchema:
        return None
    if field is None or not tail:
        return field
    return _get_schema_field(field, tail)


def _with_schema(schema_field: Field | None, overrides: Any) -> Field:
    """``setmetatable(arg.if_match, { __index = get_schema_field(...) })``."""
    return {**(schema_field or {}), **(overrides if isinstance(overrides, dict) else {})}


_CheckResult = tuple[bool, Any, str | None]


def _check_at_least_one_of(data: Any, names: Any, _record: Field, _errors: dict) -> _CheckResult:
    if any(_is_nonempty(_get_path(data, n)) for n in names):
        return True, None, None
    return False, _quoted_list(names), None


def _formatted(template: Any, value: str) -> str | None:
    return template.replace("%s", value) if isinstance(template, str) else None


def _check_conditional_at_least_one_of(
    data: Any, arg: Any, record: Field, _errors: dict
) -> _CheckResult:
    if_value = _get_path(data, arg["if_field"])
    if if_value is _MISSING:
        return True, None, None
    if_schema = _get_schema_field(record, arg["if_field"])
    if _validate_field(_with_schema(if_schema, arg.get("if_match")), if_value) is not None:
        if arg.get("else_match", _MISSING) is _MISSING:
            return True, None, None
        if _validate_field(_with_schema(if_schema, arg["else_match"]), if_value) is not None:
            return True, None, None
        names = arg.get("else_then_at_least_one_of") or []
        if any(_is_nonempty(_get_path(data, n)) for n in names):
            return True, None, None
        listed = _quoted_list(names)
        return False, listed, _formatted(arg.get("else_then_err"), listed)
    names = arg.get("then_at_least_one_of") or []
    if any(_is_nonempty(_get_path(data, n)) for n in names):
        return True, None, None
    listed = _quoted_list(names)
    return False, listed, _formatted(arg.get("then_err"), listed)


def _check_only_one_of(data: Any, names: Any, _record: Field, _errors: dict) -> _CheckResult:
    count = sum(1 for n in names if _is_nonempty(_get_path(data, n)))
    return (True, None, None) if count == 1 else (False, _quoted_list(names), None)


def _check_distinct(data: Any, names: Any, _record: Field, _errors: dict) -> _CheckResult:
    seen: set[tuple[str, object]] = set()
    for n in names:
        value = _get_path(data, n)
        if _is_nonempty(value):
            if _lua_key(value) in seen:
                return False, _quoted_list(names), None
            seen.add(_lua_key(value))
    return True, None, None


def _check_conditional(data: Any, arg: Any, record: Field, errors: dict) -> _CheckResult:
    if_value = _get_path(data, arg["if_field"])
    then_value = _get_path(data, arg["then_field"])
    if then_value is _MISSING:
        then_value = None
    if_schema = _get_schema_field(record, arg["if_field"])
    if _validate_field(_with_schema(if_schema, arg.get("if_match")), if_value) is not None:
        return True, None, None
    then_match = arg.get("then_match") if isinstance(arg.get("then_match"), dict) else {}
    if then_match.get("required") is True and then_value is None:
        _set_path(errors, arg["then_field"], REQUIRED)
        return False, arg["if_field"], None
    then_schema = _get_schema_field(record, arg["then_field"])
    err = _validate_field(_with_schema(then_schema, then_match), then_value)
    if err is not None:
        _set_path(errors, arg["then_field"], err)
        return False, arg["if_field"], _formatted(arg.get("then_err"), arg["if_field"])
    return True, None, None


def _count_nonempty(data: Any, names: Any) -> int:
    return sum(1 for n in names if _is_nonempty(_get_path(data, n)))


def _check_mutually_required(data: Any, names: Any, _record: Field, _errors: dict) -> _CheckResult:
    count = _count_nonempty(data, names)
    return (True, None, None) if count in (0, len(names)) else (False, _quoted_list(names), None)


def _check_mutually_exclusive(data: Any, names: Any, _record: Field, _errors: dict) -> _CheckResult:
    count = _count_nonempty(data, names)
    return (True, None, None) if count <= 1 else (False, _quoted_list(names), None)


def _check_mutually_exclusive_sets(
    data: Any, arg: Any, _record: Field, _errors: dict
) -> _CheckResult:
    set1 = [n for n in arg.get("set1") or [] if _is_nonempty(_get_path(data, n))]
    set2 = [n for n in arg.get("set2") or [] if _is_nonempty(_get_path(data, n))]
    if set1 and set2:
        return False, f"({_quoted_list(set1)}), ({_quoted_list(set2)})", None
    return True, None, None


def _check_custom_entity_check(data: Any, arg: Any, _record: Field, _errors: dict) -> _CheckResult:
    """Only reachable from internal definitions: JSON cannot carry the ``fn`` function."""
    result = arg["fn"](data)
    if isinstance(result, tuple):
        return bool(result[0]), (result[1] if len(result) > 1 else None), None
    return bool(result), None, None


@dataclass(frozen=True)
class _Checker:
    fn: Callable[[Any, Any, Field, dict], _CheckResult]
    message: str | None
    run_with_missing_fields: bool = False
    run_with_invalid_fields: bool = False
    field_sources: tuple[str, ...] = ()
    # Kong declares some of these as arrays where a set was meant, so they match nothing;
    # only the effective ones are listed.
    required_sources: frozenset[str] = frozenset()


_ENTITY_CHECKERS: Final[dict[str, _Checker]] = {
    "at_least_one_of": _Checker(_check_at_least_one_of, AT_LEAST_ONE_OF, True, True),
    "conditional_at_least_one_of": _Checker(
        _check_conditional_at_least_one_of,
        AT_LEAST_ONE_OF,
        True,
        True,
        ("if_field", "then_at_least_one_of", "else_then_at_least_one_of"),
    ),
    "only_one_of": _Checker(_check_only_one_of, ONLY_ONE_OF, False, True),
    "distinct": _Checker(_check_distinct, DISTINCT, False, True),
    "conditional": _Checker(
        _check_conditional,
        CONDITIONAL,
        False,
        True,
        ("if_field", "then_field"),
        frozenset({"if_field"}),
    ),
    "custom_entity_check": _Checker(
        _check_custom_entity_check,
        None,
        False,
        False,
        ("field_sources",),
        frozenset({"field_sources"}),
    ),
    "mutually_required": _Checker(_check_mutually_required, MUTUALLY_REQUIRED, True),
    "mutually_exclusive": _Checker(_check_mutually_exclusive, MUTUALLY_EXCLUSIVE, True),
    "mutually_exclusive_sets": _Checker(
        _check_mutually_exclusive_sets, MUTUALLY_EXCLUSIVE_SETS, True, False, ("set1", "set2")
    ),
}


def _run_entity_check(
    record: Field,
    name: str,
    data: Mapping[str, Any],
    arg: Any,
    full_check: bool,
    errors: dict[str, Any],
) -> None:
    """``run_entity_check``: gather the fields, decide whether to run, record the outcome."""
    checker = _ENTITY_CHECKERS.get(name)
    if checker is None:
        return
    to_check: list[str] = []
    required: set[str] = set()
    if checker.field_sources:
        for source in checker.field_sources:
            names = arg.get(source) if isinstance(arg, dict) else None
            names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
            to_check += names
            if source in checker.required_sources:
                required.update(names)
    elif isinstance(arg, list):
        to_check = list(arg)
        required = set(arg)
    missing: list[str] = []
    all_nil = all_ok = True
    for fname in to_check:
        value = _get_path(data, fname)
        schema_field = _get_schema_field(record, fname) or {}
        if value is _MISSING:
            if (
                not checker.run_with_missing_fields
                and fname in required
                and not schema_field.get("nilable")
            ):
                missing.append(fname)
        else:
            all_nil = False
            if (
                schema_field.get("type") == "string"
                and schema_field.get("referenceable")
                and is_reference(value)
            ):
                return
        if fname in errors:
            all_ok = False
    if not all_ok and not checker.run_with_invalid_fields:
        return
    if all_nil and not (checker.run_with_missing_fields and full_check):
        return
    if missing:
        for fname in missing:
            _set_path(errors, fname, REQUIRED_FOR_ENTITY_CHECK)
        return
    ok, err, custom = checker.fn(data, arg, record, errors)
    if ok:
        return
    if custom is None:
        if checker.message is not None and err is not None:
            custom = checker.message.replace("%s", str(err))
        else:
            custom = err or ENTITY_CHECK % (name, _lua_tostring(arg))
    errors.setdefault("@entity", []).append(custom)


def _run_entity_checks(
    record: Field, data: Mapping[str, Any], checks: Any, full_check: bool, errors: dict[str, Any]
) -> None:
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check:
            name, arg = next(iter(check.items()))
            if arg is not None and arg is not False:
                _run_entity_check(record, name, data, arg, full_check, errors)


# --------------------------------------------------------------------------------------------
# The metaschema (kong/db/schema/metaschema.lua), as data for the engine above
# --------------------------------------------------------------------------------------------


def _string_array() -> dict[str, Any]:
    return {"type": "array", "elements": {"type": "string"}}


def _build_metasubschema() -> dict[str, Any]:
    """``MetaSchema.MetaSubSchema``: the schema every plugin schema must satisfy."""
    match_list = {
        "type": "array",
        "elements": {
            "type": "record",
            "fields": [
                {"pattern": {"type": "string", "required": True}},
                {"err": {"type": "string"}},
            ],
        },
    }
    match_any_list = {
        "type": "record",
        "fields": [
            {"patterns": {**_string_array(), "required": True}},
            {"err": {"type": "string"}},
        ],
    }
    validators: list[dict[str, Any]] = [
        {"between": {"type": "array", "elements": {"type": "number"}, "len_eq": 2}},
        {"eq": {"type": "any"}},
        {"ne": {"type": "any"}},
        {"gt": {"type": "number"}},
        {"len_eq": {"type": "integer"}},
        {"len_min": {"type": "integer"}},
        {"len_max": {"type": "integer"}},
        {"match": {"type": "string"}},
        {"not_match": {"type": "string"}},
        {"match_all": match_list},
        {"match_none": copy.deepcopy(match_list)},
        {"match_any": match_any_list},
        {"starts_with": {"type": "string"}},
        {"one_of": {"type": "array", "elements": {"type": "any"}}},
        {"not_one_of": {"type": "array", "elements": {"type": "any"}}},
        {"contains": {"type": "any"}},
        {"is_regex": {"type": "boolean"}},
        {"timestamp": {"type": "boolean"}},
        {"uuid": {"type": "boolean"}},
        {"custom_validator": {"type": "function"}},
        {"mutually_exclusive_subsets": {"type": "array", "elements": _string_array()}},
    ]
    json_metaschema = {
        "type": "record",
        "fields": [
            {"namespace": {"type": "string", "one_of": ["proxy-wasm-filters"]}},
            {"parent_subschema_key": {"type": "string"}},
            {"optional": {"type": "boolean"}},
            {"inline": {"type": "any"}},
            {"default": {"type": "any"}},
        ],
        "entity_checks": [
            {"at_least_one_of": ["inline", "namespace", "parent_subschema_key"]},
            {"mutually_required": ["namespace", "parent_subschema_key"]},
            {
                "mutually_exclusive_sets": {
                    "set1": ["inline"],
                    "set2": ["namespace", "parent_subschema_key", "optional"],
                }
            },
        ],
    }
    field_schema: list[dict[str, Any]] = [
        {"type": {"type": "string", "one_of": list(VALID_TYPES), "required": True}},
        {"required": {"type": "boolean"}},
        {"reference": {"type": "string"}},
        {"description": {"type": "string", "len_min": 10, "len_max": 500}},
        {"examples": {"type": "array", "elements": {"type": "any"}}},
        {"auto": {"type": "boolean"}},
        {"unique": {"type": "boolean"}},
        {"unique_across_ws": {"type": "boolean"}},
        {"on_delete": {"type": "string", "one_of": ["restrict", "cascade", "null"]}},
        {"default": {"type": "self"}},
        {"abstract": {"type": "boolean"}},
        {"generate_admin_api": {"type": "boolean"}},
        {"immutable": {"type": "boolean"}},
        {"err": {"type": "string"}},
        {"encrypted": {"type": "boolean"}},
        {"referenceable": {"type": "boolean"}},
        {"json_schema": json_metaschema},
        {"transient": {"type": "boolean"}},
        {
            "deprecation": {
                "type": "record",
                "fields": [
                    {"message": {"type": "string", "required": True}},
                    {"removal_in_version": {"type": "string", "required": True}},
                    {"old_default": {"type": "any", "required": False}},
                    {
                        "replaced_with": {
                            "type": "array",
                            "required": False,
                            "elements": {
                                "type": "record",
                                "required": False,
                                "fields": [
                                    {"path": {**_string_array(), "len_min": 1, "required": True}},
                                    {
                                        "reverse_mapping_function": {
                                            "type": "function",
                                            "required": False,
                                        }
                                    },
                                ],
                            },
                        }
                    },
                ],
            }
        },
        *validators,
    ]
    for entry in field_schema:  # "Most of the above are optional"
        definition = next(iter(entry.values()))
        definition["nilable"] = not definition.get("required")

    field_entity_checks = [
        {
            "conditional": {
                "if_field": "unique_across_ws",
                "if_match": {"eq": True},
                "then_field": "unique",
                "then_match": {"eq": True, "required": True},
            }
        }
    ]
    fields_array = {
        "type": "array",
        "elements": {
            "type": "map",
            "keys": {"type": "string"},
            "values": {
                "type": "record",
                "fields": field_schema,
                "entity_checks": field_entity_checks,
            },
            "required": True,
            "len_eq": 1,
        },
    }
    nested = {"type": "record", "fields": field_schema}  # recursive field attributes
    field_schema += [
        {"elements": nested},
        {"keys": nested},
        {"values": nested},
        {"fields": fields_array},
    ]

    conditional_validators = [
        {"required": {"type": "boolean"}},
        {"elements": nested},
        {"keys": nested},
        {"values": nested},
        *validators,
    ]
    conditional_match = {"type": "record", "fields": conditional_validators}
    entity_checkers = [
        {"at_least_one_of": _string_array()},
        {
            "conditional_at_least_one_of": {
                "type": "record",
                "fields": [
                    {"if_field": {"type": "string"}},
                    {"if_match": conditional_match},
                    {"then_at_least_one_of": _string_array()},
                    {"then_err": {"type": "string"}},
                    {"else_match": conditional_match},
                    {"else_then_at_least_one_of": _string_array()},
                    {"else_then_err": {"type": "string"}},
                ],
            }
        },
        {"only_one_of": _string_array()},
        {"distinct": _string_array()},
        {
            "conditional": {
                "type": "record",
                "fields": [
                    {"if_field": {"type": "string"}},
                    {"if_match": conditional_match},
                    {"then_field": {"type": "string"}},
                    {"then_match": conditional_match},
                    {"then_err": {"type": "string"}},
                ],
            }
        },
        {
            "custom_entity_check": {
                "type": "record",
                "fields": [
                    {"field_sources": _string_array()},
                    {"fn": {"type": "function"}},
                    {"run_with_missing_fields": {"type": "boolean"}},
                    {"run_with_invalid_fields": {"type": "boolean"}},
                ],
            }
        },
        {"mutually_required": _string_array()},
        {"mutually_exclusive": _string_array()},
        {
            "mutually_exclusive_sets": {
                "type": "record",
                "fields": [
                    {"set1": _string_array()},
                    {"set2": _string_array()},
                ],
            }
        },
    ]
    entity_checks_schema = {
        "type": "array",
        "nilable": True,
        "elements": {
            "type": "record",
            "fields": entity_checkers,
            "entity_checks": [{"only_one_of": list(_ENTITY_CHECKERS)}],
        },
    }
    shorthand_fields_array: dict[str, Any] = {
        "type": "array",
        "nilable": True,
        "elements": {
            "type": "map",
            "keys": {"type": "string"},
            "required": True,
            "len_eq": 1,
        },
    }
    field_schema += [
        {"entity_checks": entity_checks_schema},
        {"shorthand_fields": shorthand_fields_array},
    ]

    invalid_as_shorthand = {"record", "foreign", "function"}
    shorthand_schema = [
        {
            "type": {
                "type": "string",
                "required": True,
                "one_of": [t for t in VALID_TYPES if t not in invalid_as_shorthand],
            }
        },
        *field_schema[1:],
        {"func": {"type": "function", "required": True}},
        {"translate_backwards": {**_string_array(), "required": False}},
    ]
    shorthand_fields_array["elements"]["values"] = {
        "type": "record",
        "fields": shorthand_schema,
        "entity_checks": field_entity_checks,
    }

    transformations_array = {
        "type": "array",
        "nilable": True,
        "elements": {
            "type": "record",
            "fields": [
                {"input": {**_string_array(), "required": False}},
                {"needs": {**_string_array(), "required": False}},
                {"on_write": {"type": "function", "required": False}},
                {"on_read": {"type": "function", "required": False}},
            ],
            "entity_checks": [{"at_least_one_of": ["on_write", "on_read"]}],
        },
    }
    return {
        "type": "record",
        "fields": [
            {"name": {"type": "string", "required": True}},
            {"fields": fields_array},
            {"entity_checks": entity_checks_schema},
            {"shorthand_fields": shorthand_fields_array},
            {"transformations": transformations_array},
            {"check": {"type": "function", "nilable": True}},
        ],
    }


_META_SUBSCHEMA: Final = _build_metasubschema()

# metaschema.lua: required_attributes and attribute_types
_REQUIRED_ATTRIBUTES: Final = {
    "array": ("elements",),
    "set": ("elements",),
    "map": ("keys", "values"),
    "record": ("fields",),
    "json": ("json_schema",),
}
_ATTRIBUTE_TYPES: Final = {
    "between": {"integer", "number"},
    "len_eq": {"array", "set", "string", "map"},
    "match": {"string"},
    "one_of": {"string", "number", "integer"},
    "contains": {"array", "set"},
    "is_regex": {"string"},
    "timestamp": {"number", "integer"},
    "uuid": {"string"},
    "unique": {"string", "number", "integer", "foreign"},
    "unique_across_ws": {"string", "number", "integer", "foreign"},
    "abstract": {"string", "number", "integer", "record", "array", "set", "map"},
    "json_schema": {"json"},
    "transient": {"string", "number", "integer", "array", "set", "boolean"},
}

# kong/db/schema/entities/plugins.lua: the fields a plugin sub-schema may specialise, with
# what compatible_fields (kong/db/schema/init.lua) compares.
_PLUGIN_ENTITY_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "instance_name": {"type": "string"},
    "created_at": {"type": "integer"},
    "updated_at": {"type": "integer"},
    "route": {"type": "foreign"},
    "service": {"type": "foreign"},
    "consumer": {"type": "foreign"},
    "config": {"type": "record"},
    "protocols": {"type": "set", "elements": {"type": "string"}},
    "enabled": {"type": "boolean"},
    "tags": {"type": "set", "elements": {"type": "string"}},
}

# kong/constants.lua CORE_ENTITIES whose primary key is a single uuid 'id'.
_FOREIGN_ENTITIES: Final = frozenset(
    {
        "workspaces",
        "consumers",
        "certificates",
        "services",
        "routes",
        "snis",
        "upstreams",
        "targets",
        "plugins",
        "ca_certificates",
        "vaults",
        "key_sets",
        "keys",
        "filter_chains",
    }
)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _add(errors: dict[str, str], path: str, message: str) -> None:
    errors[path] = f"{errors[path]}; {message}" if path in errors else message


def _lua_truthy(value: Any) -> bool:
    """Lua truthiness: only nil and false are false (``ngx.null`` is true)."""
    return value is not _MISSING and value is not False


def _check_fields(record: Field, path: str, errors: dict[str, str]) -> None:
    """``check_fields`` in metaschema.lua, reporting by field path."""
    entries = record.get("fields")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not _is_table(entry):
            _add(errors, _join(path, "fields"), META_FIELDS_ARRAY)
            break
        if not entry:
            _add(errors, _join(path, "fields"), META_FIELD_EMPTY)
            break
        name, field = next(iter(entry.items())) if isinstance(entry, dict) else ("1", entry[0])
        if _is_table(field):
            _check_field(_join(path, str(name)), field, record, errors)
        else:
            _add(errors, _join(path, str(name)), META_TABLE % name)


def _check_field(path: str, field: Any, parent: Field, errors: dict[str, str]) -> None:
    """``check_field`` in metaschema.lua: companions, attributes per type, nested definitions."""
    if not isinstance(field, dict) or not _lua_truthy(field.get("type", _MISSING)):
        _add(errors, path, META_TYPE)
        return
    ftype = field["type"]
    type_name = ftype if isinstance(ftype, str) else _lua_tostring(ftype)
    required = _REQUIRED_ATTRIBUTES.get(type_name, ())
    if field.get("abstract") and type_name == "record":
        required = ()
    for attr in required:
        if not _lua_truthy(field.get(attr, _MISSING)):
            _add(errors, path, META_REQUIRED % (type_name, attr))
    for attr in field:
        if attr in _ATTRIBUTE_TYPES and type_name not in _ATTRIBUTE_TYPES[attr]:
            _add(errors, path, META_ATTRIBUTE % (type_name, attr))
    for attr in ("elements", "keys", "values"):
        nested = field.get(attr, _MISSING)
        if _lua_truthy(nested):
            if _is_table(nested):
                _check_field(_join(path, attr), nested, field, errors)
            else:
                _add(errors, path, META_TABLE % attr)
    json_schema = field.get("json_schema")
    if (
        type_name == "json"
        and isinstance(json_schema, dict)
        and json_schema.get("parent_subschema_key")
    ):
        key = json_schema["parent_subschema_key"]
        siblings = dict(_fields(parent)) if isinstance(parent.get("fields"), list) else {}
        where = _join(path, "json_schema.parent_subschema_key")
        if key not in siblings:
            _add(errors, where, META_JSON_PARENT_KEY)
        elif siblings[key].get("type") != "string":
            _add(errors, where, META_JSON_PARENT_KEY_TYPE)
    if _lua_truthy(field.get("fields", _MISSING)):
        _check_fields(field, path, errors)


def _entry_name(entries: Any, index: str) -> tuple[str | None, Any]:
    """The name and definition of ``fields[index]`` (1-based), when it has exactly one key."""
    try:
        entry = entries[int(index) - 1]
    except (ValueError, IndexError, TypeError):
        return None, None
    if isinstance(entry, dict) and len(entry) == 1:
        name, definition = next(iter(entry.items()))
        return str(name), definition
    return None, None


def _name_errors(err: Any, path: str, definition: Any, out: dict[str, str]) -> None:
    """Re-key the engine's index-shaped metaschema errors by field name."""
    if isinstance(err, str):
        _add(out, path, err)
        return
    if isinstance(err, list):
        for message in err:
            _add(out, path, str(message))
        return
    if not isinstance(err, dict):
        return
    definition = definition if isinstance(definition, dict) else {}
    for key, sub in err.items():
        if key == "@entity":
            _name_errors(sub, path, None, out)
        elif (
            key == "fields" and isinstance(sub, dict) and isinstance(definition.get("fields"), list)
        ):
            for index, entry_err in sub.items():
                name, child = _entry_name(definition["fields"], index)
                child_path = _join(path, name if name is not None else f"fields.{index}")
                _name_errors(entry_err, child_path, child, out)
        elif key in ("elements", "keys", "values"):
            _name_errors(sub, _join(path, key), definition.get(key), out)
        else:
            _name_errors(sub, _join(path, str(key)), None, out)


def _check_subschema(schema: Mapping[str, Any]) -> dict[str, str]:
    """``Schema.new`` + ``Schema.new_subschema`` for a plugin (kong/db/schema/init.lua).

    Top-level fields may only specialise fields of the ``plugins`` entity, keeping their type;
    ``foreign`` fields must reference a known entity (``get_foreign_schema_for_field``, checked
    here for nested ones too, where Kong would fail on the first config instead).
    """
    errors: dict[str, str] = {}
    plugin = _lua_tostring(schema.get("name"))
    if not isinstance(schema.get("fields"), list):
        return {"fields": SCHEMA_NO_FIELDS}

    def foreign_refs(path: str, field: Field) -> None:
        if field.get("type") == "foreign" and field.get("reference") not in _FOREIGN_ENTITIES:
            reference = field.get("reference")
            _add(
                errors,
                path,
                SCHEMA_BAD_REFERENCE % ("nil" if reference is None else _lua_tostring(reference)),
            )
        if field.get("type") == "record" and isinstance(field.get("fields"), list):
            for name, sub in _fields(field):
                foreign_refs(_join(path, name), sub)

    for name, field in _fields(schema):
        foreign_refs(name, field)
    if errors:
        return errors
    for name, field in _fields(schema):
        parent = _PLUGIN_ENTITY_FIELDS.get(name)
        if parent is None:
            _add(errors, name, SUBSCHEMA_BAD_FIELD % (plugin, name))
        elif not _compatible_fields(parent, field):
            _add(errors, name, SUBSCHEMA_BAD_TYPE % (plugin, name))
    return errors


def _compatible_fields(parent: Field, field: Field) -> bool:
    """``compatible_fields`` in kong/db/schema/init.lua."""
    t1, t2 = parent.get("type"), field.get("type")
    if t1 == "record" and t2 == "json":
        return True
    if t1 != t2:
        return False
    if t1 in ("array", "set"):
        return parent["elements"].get("type") == (field.get("elements") or {}).get("type")
    return True


# --------------------------------------------------------------------------------------------
# Error summaries (kong/db/errors.lua: schema_violation)
# --------------------------------------------------------------------------------------------


def _sort_key(key: str) -> tuple[int, int, str]:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _flatten_errors(errors: Any, path: str = "") -> list[tuple[str, str]]:
    """``(path, message)`` pairs: ``@entity`` messages first, then keys in sorted order."""
    if isinstance(errors, str):
        return [(path, errors)]
    if isinstance(errors, list):
        return [(path, str(message)) for message in errors]
    if not isinstance(errors, Mapping):
        return [(path, _lua_tostring(errors))]
    pairs = []
    if "@entity" in errors:
        pairs += _flatten_errors(errors["@entity"], path)
    for key in sorted((str(k) for k in errors if k != "@entity"), key=_sort_key):
        pairs += _flatten_errors(errors[key], _join(path, key))
    return pairs


def _violation_summary(pairs: list[tuple[str, str]]) -> str:
    parts = [f"{path}: {message}" if path else message for path, message in pairs]
    if len(parts) == 1:
        return f"schema violation ({parts[0]})"
    return f"{len(parts)} schema violations ({'; '.join(parts)})"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def validate_plugin_schema(schema: Any) -> None:
    """Validate an external plugin's ``Schema`` the way Kong loads it, or raise ``SchemaError``.

    Follows ``plugin_loader.load_subschema`` (kong/db/schema/plugin_loader.lua):

    1. ``MetaSchema.MetaSubSchema:validate`` (kong/db/schema/metaschema.lua) — ``name`` is a
       required string; ``fields`` is an array of one-key maps ``name -> definition``; each
       definition's ``type`` is one of ``Schema.valid_types``; only the attributes the
       metaschema lists are accepted ("unknown field"), each with its declared type
       (``required`` a boolean, ``one_of`` an array, ``between`` two numbers, ``len_*``
       integers, ``match*`` Lua-pattern strings/records, ``description`` 10-500 characters,
       ``custom_validator`` a function, which JSON cannot express ...); a ``default`` must
       validate against its own field; ``unique_across_ws`` needs ``unique``; ``entity_checks``
       entries name exactly one known checker; ``shorthand_fields``/``transformations``/
       ``check`` need Lua functions and so always fail from a plugin server.
    2. The metaschema's ``check`` (``check_fields``/``check_field``): ``missing type
       declaration``; ``array``/``set`` need ``elements``, ``map`` needs ``keys`` and ``values``,
       ``record`` (unless abstract) needs ``fields``, ``json`` needs ``json_schema``; some
       attributes only for some types (``field of type 'string' cannot have attribute
       'between'``); nested ``elements``/``keys``/``values`` are checked the same way.
    3. ``Entity.new_subschema`` → ``Schema.new_subschema`` (kong/db/schema/entity.lua,
       kong/db/schema/init.lua): top-level fields must specialise a field of the ``plugins``
       entity (kong/db/schema/entities/plugins.lua) without changing its type, and ``foreign``
       fields must reference a known entity.

    ``SchemaError.errors`` maps the dotted path of each offending field (or attribute) to
    Kong's message.
    """
    if not isinstance(schema, dict):
        raise SchemaError(f"schema violation ({BAD_INPUT})", {"schema": BAD_INPUT})
    raw_errors = _validate_record(_META_SUBSCHEMA, schema)
    # run_self_check: the check function needs every non-nilable field present
    absent = [name for name in ("name", "fields") if schema.get(name, _MISSING) is _MISSING]
    for name in absent:
        raw_errors[name] = REQUIRED_FOR_ENTITY_CHECK
    errors: dict[str, str] = {}
    _name_errors(raw_errors, "", schema, errors)
    if not absent:
        _check_fields(schema, "", errors)
    if errors:
        pairs = sorted(errors.items(), key=lambda item: [_sort_key(p) for p in item[0].split(".")])
        raise SchemaError(_violation_summary(pairs), dict(pairs))
    sub_errors = _check_subschema(schema)
    if sub_errors:
        first = next(iter(sub_errors.values()))
        raise SchemaError(_SUBSCHEMA_INIT_PREFIX + first, sub_errors)


def config_fields_of(schema: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(name, definition)`` pairs of the schema's ``config`` record, in order.

    Empty when the schema has no ``config`` field (the ``plugins`` entity's ``config`` stays
    abstract then, kong/db/schema/entities/plugins.lua).
    """
    config = _config_definition(schema)
    if config is None or not isinstance(config.get("fields"), list):
        return []
    return [(name, dict(field)) for name, field in _fields(config)]


def _config_definition(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    if not isinstance(schema, Mapping) or not isinstance(schema.get("fields"), list):
        return None
    for name, field in _fields(schema):
        if name == "config":
            return dict(field)
    return None


def _make_records_required(field: dict[str, Any]) -> None:
    """``make_records_required`` (kong/db/schema/entity.lua): records default to required.

    Applies to ``config`` and, recursively, to record fields of records — not to records
    inside arrays, sets or maps.
    """
    if field.get("required") is None:
        field["required"] = True
    if isinstance(field.get("fields"), list):
        for _name, sub in _fields(field):
            if sub.get("type") == "record":
                _make_records_required(sub)  # type: ignore[arg-type]


def _plugin_config_field(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``config`` definition as the ``plugins`` entity sees it after ``new_subschema``."""
    config = _config_definition(schema)
    if config is None:
        return None
    config = copy.deepcopy(config)
    if config.get("type") == "record":
        _make_records_required(config)
    return config


def _normalise_numbers(value: Any) -> Any:
    """Integral floats become ints, as Kong's cjson encodes them (``3.0`` → ``3``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    return value


def process_config(schema: Mapping[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults into a plugin's ``config`` and validate it, as Kong does on insert.

    ``config`` is the plugin entry's ``config`` from kong.yml; ``None`` means the key is
    absent. Reproduces, for the ``plugins`` entity's ``config`` field:

    * ``Entity.new_subschema`` (kong/db/schema/entity.lua): ``config`` and nested record fields
      are required unless they say otherwise, so an absent record gets its sub-defaults
      materialised (records inside arrays/maps do not: absent there means null);
    * ``Schema:process_auto_fields(..., "insert")`` (kong/db/schema/init.lua): defaults
      (deep-copied), ``auto`` uuids/strings, absent optional fields set to null (``None``),
      sets de-duplicated;
    * ``Schema:validate``: types (integer vs number, boolean, string, array, set, map, record,
      foreign), empty strings rejected unless ``len_min = 0``, every validator in
      ``Schema.validators_order`` (``field.err`` overriding its message), ``required``,
      unknown keys, and the records' ``entity_checks``; plus the schema's top-level
      ``entity_checks`` against ``{"config": ...}``.

    Returns the processed config (integral floats as ints, as the plugin server receives
    them); raises :class:`ConfigError` with Kong's nested errors under ``"config"``.
    The schema must have passed :func:`validate_plugin_schema`.
    """
    field = _plugin_config_field(schema)
    value: Any = _MISSING if config is None else copy.deepcopy(config)
    errors: dict[str, Any] = {}
    if field is None:
        # the plugins entity's config stays abstract: any value is an error
        if value is not _MISSING:
            errors["config"] = SUBSCHEMA_ABSTRACT_FIELD
            raise ConfigError(errors)
        return {}
    value = _adjust(field, value)
    if value is not _MISSING:
        err = _validate_field(field, value)
        if err is not None:
            errors["config"] = err
    if field.get("required") and (value is None or value is _MISSING):
        errors["config"] = REQUIRED
    plugin_record = {"fields": [{"config": field}]}
    entity = {} if value is _MISSING else {"config": value}
    _run_entity_checks(plugin_record, entity, schema.get("entity_checks"), True, errors)
    if errors:
        raise ConfigError(errors)
    return _normalise_numbers(value) if isinstance(value, dict) else {}


def _select_field(field: Field, value: Any) -> Any:
    """``adjust_field_for_context`` for the ``select`` context."""
    if value is None and field.get("required") is True:
        return _handle_missing(field)
    if field.get("abstract"):
        return value
    ftype = field.get("type")
    if ftype == "record":
        if value is not None and (value is not _MISSING or field.get("required") is True):
            if value is _MISSING:
                value = _handle_missing(field)
            if isinstance(value, dict):
                return _select_record(field, value)
    elif isinstance(value, list) and ftype in ("array", "set"):
        sub = field.get("elements")
        if isinstance(sub, dict):
            value = [_select_field(sub, v) for v in value]
    elif isinstance(value, dict) and ftype == "map":
        sub = field.get("values")
        if isinstance(sub, dict):
            value = {k: _select_field(sub, v) for k, v in value.items()}
    elif ftype == "string" and field.get("referenceable") and is_reference(value):
        value = resolve_reference(value)
    if value is _MISSING:
        return _handle_missing(field)
    return value


def _references(field: Field, value: Any) -> Any:
    """The vault references a field's value holds, as ``$refs`` records them: the
    reference of a string, ``{index: reference}`` of an array or ``{key: reference}`` of a
    map whose elements are referenceable strings; ``None`` when there are none."""
    ftype = field.get("type")
    if ftype == "string":
        return value if field.get("referenceable") and is_reference(value) else None
    sub = (
        field.get("elements")
        if ftype in ("array", "set")
        else (field.get("values") if ftype == "map" else None)
    )
    if not isinstance(sub, dict) or sub.get("type") != "string" or not sub.get("referenceable"):
        return None
    items = (
        enumerate(value, 1)
        if isinstance(value, list)
        else value.items()
        if isinstance(value, dict)
        else ()
    )
    found = {k: v for k, v in items if is_reference(v)}
    return found or None


def _select_record(record: Field, data: Mapping[str, Any]) -> dict[str, Any]:
    """``process_auto_fields(data, "select", nulls=false)`` for a record.

    A resolved vault reference is remembered in the record's ``$refs`` (field name →
    reference), and a field whose reference resolved to ``""`` keeps that ``""`` instead
    of vanishing like other empty strings: the plugin receives both.
    """
    out = dict(data)
    refs: dict[str, Any] = {}
    for name, field in _fields(record):
        reference = _references(field, out.get(name))
        if reference is not None:
            refs[name] = reference
        value = _select_field(field, out.get(name, _MISSING))
        if value is None or value is _MISSING:
            out.pop(name, None)  # "value == null and not nulls": the key goes away
            continue
        if field.get("type") == "integer" and isinstance(value, float) and math.isfinite(value):
            value = math.floor(value)
        out[name] = value
    by_name = dict(_fields(record))
    for key in list(out):
        field = by_name.get(key)
        if field is None:
            del out[key]  # unknown keys are dropped on select
        elif (
            field.get("type") == "string"
            and (field.get("len_min") or 1) > 0
            and out[key] == ""
            and key not in refs
        ):
            del out[key]
    if refs:
        out["$refs"] = refs
    return out


def select_config(schema: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as Kong's runloop reads it back: nulls removed, recursively.

    Kong stores the processed config (with ``ngx.null`` for unset fields), but the plugins
    iterator (kong/runloop/plugins_iterator.lua) reads plugins with
    ``kong.db.plugins:each(page_size, GLOBAL_QUERY_OPTS)`` — options without ``nulls`` — so
    ``DAO:row_to_entity`` (kong/db/dao/init.lua) runs ``process_auto_fields(row, "select",
    nulls=nil)``, which replaces every null with nil (kong/db/schema/init.lua). What reaches
    the plugin server (``cjson_encode(conf)`` in kong/runloop/plugin_servers/rpc/mp_rpc.lua)
    therefore has *no key* for an unset optional field. ``config`` is the output of
    :func:`process_config`.
    """
    field = _plugin_config_field(schema)
    if field is None or field.get("type") != "record":
        return dict(config)
    return _select_record(field, config)
