"""Field validators: ``Schema.validators`` and ``Schema.validators_order``
(``kong/db/schema/init.lua``), each answering ``(ok, message)``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from kong_harness.schema.lua import (
    lua_eq,
    lua_int,
    lua_key,
    lua_len,
    lua_match,
    lua_tostring,
    quoted_list,
)
from kong_harness.schema.messages import (
    BETWEEN,
    CONTAINS,
    EQ,
    GT,
    INVALID_VALUE,
    IS_REGEX,
    LEN_EQ,
    LEN_MAX,
    LEN_MIN,
    MUTUALLY_EXCLUSIVE_SETS,
    NE,
    NOT_ONE_OF,
    ONE_OF,
    STARTS_WITH,
    TIMESTAMP,
    UUID,
)

_Outcome = tuple[bool, str | None]


def _v_between(value: Any, limits: Any, _field: Mapping[str, Any]) -> _Outcome:
    if value < limits[0] or value > limits[1]:
        return False, BETWEEN.replace("%d", lua_int(limits[0]), 1).replace(
            "%d", lua_int(limits[1]), 1
        )
    return True, None


def _v_eq(value: Any, wanted: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (True, None) if lua_eq(value, wanted) else (False, EQ % lua_tostring(wanted))


def _v_ne(value: Any, wanted: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (False, NE % lua_tostring(value)) if lua_eq(value, wanted) else (True, None)


def _v_gt(value: Any, limit: Any, _field: Mapping[str, Any]) -> _Outcome:
    return (True, None) if value > limit else (False, GT % lua_tostring(limit))


def _length_validator(template: str, ok: Callable[[int, Any], bool]) -> Callable[..., _Outcome]:
    def validate(value: Any, n: Any, field: Mapping[str, Any]) -> _Outcome:
        length = lua_len(value, field)
        if length is None or ok(length, n):
            return True, None
        return False, template.replace("%d", lua_int(n))

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
    if any(lua_eq(value, option) for option in options):
        return True, None
    return False, ONE_OF % ", ".join(lua_tostring(o) for o in options)


def _v_not_one_of(value: Any, options: Any, _field: Mapping[str, Any]) -> _Outcome:
    if any(lua_eq(value, option) for option in options):
        return False, NOT_ONE_OF % ", ".join(lua_tostring(o) for o in options)
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
    if isinstance(value, list) and any(lua_eq(item, wanted) for item in value):
        return True, None
    return False, CONTAINS % lua_tostring(wanted)


def _v_mutually_exclusive_subsets(value: Any, subsets: Any, _field: Mapping[str, Any]) -> _Outcome:
    owner: dict[tuple[str, object], int] = {}
    for index, subset in enumerate(subsets):
        for item in subset:
            owner[lua_key(item)] = index
    member_of: list[int] = []
    for item in value if isinstance(value, list) else []:
        owning_subset = owner.get(lua_key(item))
        if owning_subset is not None and owning_subset not in member_of:
            member_of.append(owning_subset)
    if len(member_of) <= 1:
        return True, None
    return False, MUTUALLY_EXCLUSIVE_SETS % quoted_list([subsets[i] for i in member_of])


def _v_custom_validator(value: Any, fn: Any, _field: Mapping[str, Any]) -> _Outcome:
    """Only reachable from the metaschema (:mod:`.metaschema`): JSON cannot carry a function."""
    result = fn(value)
    if isinstance(result, tuple):
        return bool(result[0]), result[1] if len(result) > 1 else None
    return bool(result), None


VALIDATORS: Final[dict[str, Callable[[Any, Any, Mapping[str, Any]], _Outcome]]] = {
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
DEFAULT_VALIDATOR_ERRORS: Final = {
    "match": INVALID_VALUE,
    "not_match": INVALID_VALUE,
    "match_all": INVALID_VALUE,
    "match_none": INVALID_VALUE,
    "match_any": INVALID_VALUE,
    "is_regex": IS_REGEX,
    "timestamp": TIMESTAMP,
    "uuid": UUID,
}
