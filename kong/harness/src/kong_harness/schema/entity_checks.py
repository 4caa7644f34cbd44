"""Entity checks: ``Schema.entity_checkers`` and ``run_entity_check``
(``kong/db/schema/init.lua``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kong_harness.schema.definitions import Field, get_schema_field
from kong_harness.schema.lua import MISSING, is_nonempty, lua_key, lua_tostring, quoted_list
from kong_harness.schema.messages import (
    AT_LEAST_ONE_OF,
    CONDITIONAL,
    DISTINCT,
    ENTITY_CHECK,
    MUTUALLY_EXCLUSIVE,
    MUTUALLY_EXCLUSIVE_SETS,
    MUTUALLY_REQUIRED,
    ONLY_ONE_OF,
    REQUIRED,
    REQUIRED_FOR_ENTITY_CHECK,
)
from kong_harness.vault import is_reference


def _get_path(data: Any, name: str) -> Any:
    """``get_field``: ``"a.b"`` → ``data["a"]["b"]``; ``MISSING`` for Lua nil."""
    head, _, tail = name.partition(".")
    if not isinstance(data, dict):
        return MISSING
    value = data.get(head, MISSING)
    if not tail:
        return value
    if value is None or value is MISSING:
        return MISSING
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


def _with_schema(schema_field: Field | None, overrides: Any) -> Field:
    """``setmetatable(arg.if_match, { __index = get_schema_field(...) })``."""
    return {**(schema_field or {}), **(overrides if isinstance(overrides, dict) else {})}


_CheckResult = tuple[bool, Any, str | None]

#: ``Schema:validate_field`` (kong_harness.schema.engine), which the conditional checks call;
#: passed in because the engine runs these checks.
FieldValidator = Callable[[Field, Any], Any]


def _check_at_least_one_of(
    data: Any, names: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    if any(is_nonempty(_get_path(data, n)) for n in names):
        return True, None, None
    return False, quoted_list(names), None


def _formatted(template: Any, value: str) -> str | None:
    return template.replace("%s", value) if isinstance(template, str) else None


def _check_conditional_at_least_one_of(
    data: Any, arg: Any, record: Field, _errors: dict, validate_field: FieldValidator
) -> _CheckResult:
    if_value = _get_path(data, arg["if_field"])
    if if_value is MISSING:
        return True, None, None
    if_schema = get_schema_field(record, arg["if_field"])
    if validate_field(_with_schema(if_schema, arg.get("if_match")), if_value) is not None:
        if arg.get("else_match", MISSING) is MISSING:
            return True, None, None
        if validate_field(_with_schema(if_schema, arg["else_match"]), if_value) is not None:
            return True, None, None
        names = arg.get("else_then_at_least_one_of") or []
        if any(is_nonempty(_get_path(data, n)) for n in names):
            return True, None, None
        listed = quoted_list(names)
        return False, listed, _formatted(arg.get("else_then_err"), listed)
    names = arg.get("then_at_least_one_of") or []
    if any(is_nonempty(_get_path(data, n)) for n in names):
        return True, None, None
    listed = quoted_list(names)
    return False, listed, _formatted(arg.get("then_err"), listed)


def _check_only_one_of(
    data: Any, names: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    count = sum(1 for n in names if is_nonempty(_get_path(data, n)))
    return (True, None, None) if count == 1 else (False, quoted_list(names), None)


def _check_distinct(
    data: Any, names: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    seen: set[tuple[str, object]] = set()
    for n in names:
        value = _get_path(data, n)
        if is_nonempty(value):
            if lua_key(value) in seen:
                return False, quoted_list(names), None
            seen.add(lua_key(value))
    return True, None, None


def _check_conditional(
    data: Any, arg: Any, record: Field, errors: dict, validate_field: FieldValidator
) -> _CheckResult:
    if_value = _get_path(data, arg["if_field"])
    then_value = _get_path(data, arg["then_field"])
    if then_value is MISSING:
        then_value = None
    if_schema = get_schema_field(record, arg["if_field"])
    if validate_field(_with_schema(if_schema, arg.get("if_match")), if_value) is not None:
        return True, None, None
    then_match = arg.get("then_match") if isinstance(arg.get("then_match"), dict) else {}
    if then_match.get("required") is True and then_value is None:
        _set_path(errors, arg["then_field"], REQUIRED)
        return False, arg["if_field"], None
    then_schema = get_schema_field(record, arg["then_field"])
    err = validate_field(_with_schema(then_schema, then_match), then_value)
    if err is not None:
        _set_path(errors, arg["then_field"], err)
        return False, arg["if_field"], _formatted(arg.get("then_err"), arg["if_field"])
    return True, None, None


def _count_nonempty(data: Any, names: Any) -> int:
    return sum(1 for n in names if is_nonempty(_get_path(data, n)))


def _check_mutually_required(
    data: Any, names: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    count = _count_nonempty(data, names)
    return (True, None, None) if count in (0, len(names)) else (False, quoted_list(names), None)


def _check_mutually_exclusive(
    data: Any, names: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    count = _count_nonempty(data, names)
    return (True, None, None) if count <= 1 else (False, quoted_list(names), None)


def _check_mutually_exclusive_sets(
    data: Any, arg: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    set1 = [n for n in arg.get("set1") or [] if is_nonempty(_get_path(data, n))]
    set2 = [n for n in arg.get("set2") or [] if is_nonempty(_get_path(data, n))]
    if set1 and set2:
        return False, f"({quoted_list(set1)}), ({quoted_list(set2)})", None
    return True, None, None


def _check_custom_entity_check(
    data: Any, arg: Any, _record: Field, _errors: dict, _validate: FieldValidator
) -> _CheckResult:
    """Only reachable from internal definitions: JSON cannot carry the ``fn`` function."""
    result = arg["fn"](data)
    if isinstance(result, tuple):
        return bool(result[0]), (result[1] if len(result) > 1 else None), None
    return bool(result), None, None


@dataclass(frozen=True)
class _Checker:
    fn: Callable[[Any, Any, Field, dict, FieldValidator], _CheckResult]
    message: str | None
    run_with_missing_fields: bool = False
    run_with_invalid_fields: bool = False
    field_sources: tuple[str, ...] = ()
    # Kong declares some of these as arrays where a set was meant, so they match nothing;
    # only the effective ones are listed.
    required_sources: frozenset[str] = frozenset()


ENTITY_CHECKERS: Final[dict[str, _Checker]] = {
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
    validate_field: FieldValidator,
) -> None:
    """``run_entity_check``: gather the fields, decide whether to run, record the outcome."""
    checker = ENTITY_CHECKERS.get(name)
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
        schema_field = get_schema_field(record, fname) or {}
        if value is MISSING:
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
    ok, err, custom = checker.fn(data, arg, record, errors, validate_field)
    if ok:
        return
    if custom is None:
        if checker.message is not None and err is not None:
            custom = checker.message.replace("%s", str(err))
        else:
            custom = err or ENTITY_CHECK % (name, lua_tostring(arg))
    errors.setdefault("@entity", []).append(custom)


def run_entity_checks(
    record: Field,
    data: Mapping[str, Any],
    checks: Any,
    full_check: bool,
    errors: dict[str, Any],
    validate_field: FieldValidator,
) -> None:
    """Run a record's ``entity_checks``, adding their messages to ``errors`` in place."""
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check:
            name, arg = next(iter(check.items()))
            if arg is not None and arg is not False:
                _run_entity_check(record, name, data, arg, full_check, errors, validate_field)
