"""Lua values and Lua patterns as the schema machinery sees them.

Lua values map to Python as: Lua ``nil`` (absent) → :data:`MISSING`; ``ngx.null`` → ``None``;
tables → ``dict``/``list``; numbers → ``int``/``float`` (never ``bool``). Lua patterns
(``string.match``, LuaJIT's ``lstrlib.c``) are translated to byte regular expressions.
"""

from __future__ import annotations

import math
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final, TypeGuard


class _Missing:
    """Lua ``nil``: a key that is absent (``None`` is ``ngx.null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "nil"


MISSING: Final = _Missing()


def is_number(value: object) -> TypeGuard[int | float]:
    """Lua ``type(v) == "number"`` (a Python ``bool`` is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_table(value: object) -> bool:
    """Lua ``type(v) == "table"``."""
    return isinstance(value, dict | list)


def lua_tostring(value: object) -> str:
    """LuaJIT's ``tostring`` for the values a JSON schema can hold (numbers use ``%.14g``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return format(float(value), ".14g")
    if isinstance(value, str):
        return value
    return f"table: 0x{id(value):08x}"


def lua_int(value: object) -> str:
    """``string.format("%d", n)`` in LuaJIT: truncates toward zero."""
    if is_number(value) and math.isfinite(value):
        return str(int(value))
    return lua_tostring(value)


def lua_eq(a: object, b: object) -> bool:
    """Lua ``==``: same type and value; tables only equal themselves; ``1 == 1.0``."""
    if a is b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def lua_key(value: object) -> tuple[str, object]:
    """What Lua uses as a table key: tables by identity, numbers normalised (``1 == 1.0``)."""
    if isinstance(value, bool):
        return ("boolean", value)
    if is_number(value):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    return ("table", id(value))


def is_nonempty(value: object) -> bool:
    """``is_nonempty`` in kong/db/schema/init.lua: not nil/null, not ``{}``, not ``""``."""
    if value is MISSING or value is None:
        return False
    if is_table(value) and not value:
        return False
    return value != ""


def quoted_list(words: Iterable[object]) -> str:
    """``quoted_list`` in kong/db/schema/init.lua: ``'a', 'b'``, nested lists in parentheses."""
    parts = []
    for word in words:
        if isinstance(word, list):
            parts.append(f"({quoted_list(word)})")
        else:
            parts.append(f"'{lua_tostring(word)}'")
    return ", ".join(parts)


def lua_len(value: object, field: Mapping[str, Any]) -> int | None:
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


def random_string() -> str:
    """``kong.tools.rand.random_string``: 32 alphanumeric characters."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


class LuaPatternError(ValueError):
    """A Lua pattern Lua itself would reject (``malformed pattern ...``)."""


class UnsupportedLuaPattern(LuaPatternError):
    """A valid Lua pattern using a construct :func:`lua_match` does not translate."""


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
