"""The validation engine: ``Schema:process_auto_fields(..., "insert")`` and
``Schema:validate`` (``kong/db/schema/init.lua``), used for plugin schemas (against the
metaschema) and plugin configs (against the plugin's schema) alike, as Kong does."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kong_harness.schema.definitions import Field, each_field
from kong_harness.schema.entity_checks import run_entity_checks
from kong_harness.schema.errors import BrokenSchema
from kong_harness.schema.lua import (
    MISSING,
    LuaPatternError,
    UnsupportedLuaPattern,
    is_number,
    is_table,
    lua_key,
    lua_tostring,
    random_string,
)
from kong_harness.schema.messages import (
    ARRAY,
    BOOLEAN,
    EQ,
    FUNCTION,
    INTEGER,
    MAP,
    MISSING_PK,
    NE,
    NUMBER,
    RECORD,
    REQUIRED,
    SCHEMA_CANNOT_VALIDATE,
    SCHEMA_TYPE,
    SET,
    STRING,
    SUBSCHEMA_ABSTRACT_FIELD,
    UNKNOWN,
    VALIDATION,
)
from kong_harness.schema.validators import DEFAULT_VALIDATOR_ERRORS, VALIDATORS
from kong_harness.vault import is_reference


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
        key = lua_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _auto_value(name: str, field: Field, value: Any) -> Any:
    """The ``auto = true`` branch of ``process_auto_fields`` for an insert."""
    if field.get("uuid"):
        return str(uuid.uuid4()) if value is MISSING else value
    ftype = field.get("type")
    if ftype == "string":
        return random_string() if value is MISSING else value
    if (name == "created_at" and value in (MISSING, None)) or name == "updated_at":
        if ftype == "number":
            return time.time()
        if ftype == "integer":
            return int(time.time())
    return value


def handle_missing_field(field: Field) -> Any:
    """``handle_missing_field``: default, else nil (nilable), null (optional) or sub-defaults."""
    if "default" in field:
        default = copy.deepcopy(field["default"])
        if field.get("type") in ("array", "set") and default == {}:
            return []
        return default
    if field.get("nilable"):
        return MISSING
    if field.get("required") is not True:
        return None
    if field.get("abstract"):
        return MISSING
    if field.get("type") == "record":
        return _process_record(field, {})
    return MISSING


def record_to_recurse(field: Field, value: Any) -> Any:
    """``should_recurse_record`` (insert and select contexts) for a record field, and what
    ``adjust_field_for_context`` then recurses into: a missing value is filled by
    ``handle_missing_field``. ``None`` when it does not recurse."""
    if value is None or (value is MISSING and field.get("required") is not True):
        return None
    return handle_missing_field(field) if value is MISSING else value


def adjust_field(field: Field, value: Any) -> Any:
    """``adjust_field_for_context`` for the ``insert`` context."""
    if field.get("abstract"):
        return value
    ftype = field.get("type")
    if ftype == "record":
        record = record_to_recurse(field, value)
        if record is not None:
            value = _as_lua_table(record, "record")
            if isinstance(value, dict):
                return _process_record(field, value)
    elif is_table(value):
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
                value = [adjust_field(sub, item) for item in value]
            else:
                value = {k: adjust_field(sub, v) for k, v in value.items()}
    if value is MISSING:
        return handle_missing_field(field)
    return value


def _process_record(record: Field, data: Mapping[str, Any]) -> dict[str, Any]:
    """``Schema:process_auto_fields(data, "insert")``: auto values, defaults, nulls.

    Returns a new dict; unknown keys are kept (``validate`` reports them).
    """
    out = copy.deepcopy(dict(data))
    for name, field in each_field(record):
        value = out.get(name, MISSING)
        if field.get("auto"):
            value = _auto_value(name, field, value)
        value = adjust_field(field, value)
        if value is MISSING:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _validate_items(field: Field, items: list[Any]) -> dict[str, Any] | None:
    """``validate_elements``: each item against ``elements`` made required; keyed 1..n."""
    elements = field.get("elements")
    if not isinstance(elements, dict):
        raise BrokenSchema("array without elements")
    required = {**elements, "required": True}
    errors = {}
    for index, item in enumerate(items, 1):
        err = validate_field(required, item)
        if err is not None:
            errors[str(index)] = err
    return errors or None


def _validate_foreign(value: Any) -> Any:
    """``validate_primary_key`` of the referenced entity; every core entity's key is ``id``."""
    pk = value.get("id", MISSING) if isinstance(value, dict) else MISSING
    if pk is MISSING or pk is False:
        return {"id": MISSING_PK}
    if pk is None:
        return {"id": REQUIRED}
    err = validate_field({"type": "string", "uuid": True}, pk)
    return {"id": err} if err is not None else None


def _validate_type(field: Field, value: Any) -> tuple[Any, Field]:
    """The type part of ``Schema:validate_field``.

    Returns ``(error, field)``; the field may come back amended (strings get ``len_min = 1``)
    and the error may be the sentinel ``MISSING`` for "valid, skip the validators".
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
            raise BrokenSchema("map without keys/values")
        for k, v in value.items():
            err = validate_field({**keys, "required": True}, k)
            if err is None:
                err = validate_field({**values, "required": True}, v)
            if err is not None:
                return err, field
        return None, field
    if ftype == "record":
        value = _as_lua_table(value, "record")
        if not isinstance(value, dict):
            return RECORD, field
        errors = validate_record(field, _process_record(field, value))
        return errors or None, field
    if ftype == "foreign":
        return _validate_foreign(value), field
    if ftype == "integer":
        ok = is_number(value) and (isinstance(value, int) or float(value).is_integer())
        return (None if ok else INTEGER), field
    if ftype == "string":
        if not isinstance(value, str):
            return STRING, field
        if "len_min" not in field:
            field = {**field, "len_min": 1}  # empty strings are not accepted by default
        if field.get("referenceable") and is_reference(value):
            return MISSING, field
        return None, field
    if ftype == "number":
        return (None if is_number(value) else NUMBER), field
    if ftype == "boolean":
        return (None if isinstance(value, bool) else BOOLEAN), field
    if ftype == "function":
        return (None if callable(value) else FUNCTION), field
    if ftype in ("json", "any"):
        # json: validate_field returns (nil, validation_errors.JSON == nil), i.e. no error;
        # json fields of a record go through validate_json_field, see validate_record.
        return None, field
    return SCHEMA_TYPE % lua_tostring(ftype), field


def validate_field(field: Field, value: Any) -> Any:
    """``Schema:validate_field``: ``None`` when valid, else a message or a nested error table."""
    if value is MISSING:  # only a conditional entity check can ask this; never valid
        return REQUIRED
    if value is None:
        if "ne" in field and field["ne"] is None:
            return field.get("err") or NE % "null"
        if field.get("eq") is not None:
            return EQ % lua_tostring(field["eq"])
        if field.get("required"):
            return REQUIRED
        return None
    if "eq" in field and field["eq"] is None:
        return field.get("err") or EQ % "null"
    if field.get("abstract"):
        return SUBSCHEMA_ABSTRACT_FIELD
    err, field = _validate_type(field, value)
    if err is MISSING:
        return None
    if err is not None:
        return err
    for name, validator in VALIDATORS.items():
        arg = field.get(name)
        if arg is None:
            continue
        ok, message = validator(value, arg, field)
        if not ok:
            if message is None:
                template = DEFAULT_VALIDATOR_ERRORS.get(name, VALIDATION)
                message = template.replace("%s", lua_tostring(value))
            return field.get("err") or message
    return None


def validate_record(
    record: Field, data: Mapping[str, Any], full_check: bool = True
) -> dict[str, Any]:
    """``Schema:validate`` (``validate_fields``, required fields, entity checks)."""
    errors: dict[str, Any] = {}
    by_name = dict(each_field(record))
    for key, value in data.items():
        name = str(key)
        field = by_name.get(name)
        if field is not None and field.get("type") == "json":
            continue  # validate_json_field: JSON-schema validation is not reproduced
        if field is not None and field.get("type") == "self":
            # metaschema 'default = { type = "self" }': the value must validate against the
            # very field definition being checked (run under pcall in Kong)
            try:
                err = validate_field(data, value)
            except UnsupportedLuaPattern:
                raise
            except (
                BrokenSchema,
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
            err = validate_field(field, value)
        if err is not None:
            errors[name] = err
    for name, field in by_name.items():
        value = data.get(name, MISSING)
        if field.get("required") and (value is None or (full_check and value is MISSING)):
            errors[name] = REQUIRED
    run_entity_checks(record, data, record.get("entity_checks"), full_check, errors, validate_field)
    return errors
