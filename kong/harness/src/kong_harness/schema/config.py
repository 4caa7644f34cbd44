"""A plugin's ``config``: Kong's insert path (defaults, validation) when the declarative
config is loaded, and its select path, which is what a plugin server is handed."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from kong_harness.schema.definitions import Field, each_field
from kong_harness.schema.engine import (
    adjust_field,
    handle_missing_field,
    record_to_recurse,
    validate_field,
)
from kong_harness.schema.entity_checks import run_entity_checks
from kong_harness.schema.errors import ConfigError
from kong_harness.schema.lua import MISSING
from kong_harness.schema.messages import REQUIRED, SUBSCHEMA_ABSTRACT_FIELD
from kong_harness.vault import is_reference, resolve_reference


def config_fields_of(schema: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(name, definition)`` pairs of the schema's ``config`` record, in order.

    Empty when the schema has no ``config`` field (the ``plugins`` entity's ``config`` stays
    abstract then, kong/db/schema/entities/plugins.lua).
    """
    config = _config_definition(schema)
    if config is None or not isinstance(config.get("fields"), list):
        return []
    return [(name, dict(field)) for name, field in each_field(config)]


def _config_definition(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    if not isinstance(schema.get("fields"), list):
        return None
    for name, field in each_field(schema):
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
        for _name, sub in each_field(field):
            if sub.get("type") == "record":
                _make_records_required(sub)


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
    value: Any = MISSING if config is None else copy.deepcopy(config)
    errors: dict[str, Any] = {}
    if field is None:
        # the plugins entity's config stays abstract: any value is an error
        if value is not MISSING:
            errors["config"] = SUBSCHEMA_ABSTRACT_FIELD
            raise ConfigError(errors)
        return {}
    value = adjust_field(field, value)
    if value is not MISSING:
        err = validate_field(field, value)
        if err is not None:
            errors["config"] = err
    if field.get("required") and (value is None or value is MISSING):
        errors["config"] = REQUIRED
    plugin_record = {"fields": [{"config": field}]}
    entity = {} if value is MISSING else {"config": value}
    run_entity_checks(
        plugin_record, entity, schema.get("entity_checks"), True, errors, validate_field
    )
    if errors:
        raise ConfigError(errors)
    return _normalise_numbers(value) if isinstance(value, dict) else {}


def _select_field(field: Field, value: Any) -> Any:
    """``adjust_field_for_context`` for the ``select`` context."""
    if value is None and field.get("required") is True:
        return handle_missing_field(field)
    if field.get("abstract"):
        return value
    ftype = field.get("type")
    if ftype == "record":
        record = record_to_recurse(field, value)
        if isinstance(record, dict):
            return _select_record(field, record)
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
    if value is MISSING:
        return handle_missing_field(field)
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
    for name, field in each_field(record):
        reference = _references(field, out.get(name))
        if reference is not None:
            refs[name] = reference
        value = _select_field(field, out.get(name, MISSING))
        if value is None or value is MISSING:
            out.pop(name, None)  # "value == null and not nulls": the key goes away
            continue
        if field.get("type") == "integer" and isinstance(value, float) and math.isfinite(value):
            value = math.floor(value)
        out[name] = value
    by_name = dict(each_field(record))
    for key in list(out):
        definition = by_name.get(key)
        if definition is None:
            del out[key]  # unknown keys are dropped on select
        elif (
            definition.get("type") == "string"
            and (definition.get("len_min") or 1) > 0
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
