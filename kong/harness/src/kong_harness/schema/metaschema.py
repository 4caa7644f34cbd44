"""The metaschema (``kong/db/schema/metaschema.lua``) as data for the engine, its ``check``
function, and the sub-schema rules of ``Schema.new_subschema``: what Kong requires of an
external plugin's ``Schema`` before it loads the plugin."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from kong_harness.schema.definitions import Field, each_field
from kong_harness.schema.engine import validate_record
from kong_harness.schema.entity_checks import ENTITY_CHECKERS
from kong_harness.schema.errors import SchemaError, error_path_key, join_path, violation_summary
from kong_harness.schema.lua import MISSING, is_table, lua_tostring
from kong_harness.schema.messages import (
    BAD_INPUT,
    META_ATTRIBUTE,
    META_FIELD_EMPTY,
    META_FIELDS_ARRAY,
    META_JSON_PARENT_KEY,
    META_JSON_PARENT_KEY_TYPE,
    META_REQUIRED,
    META_TABLE,
    META_TYPE,
    REQUIRED_FOR_ENTITY_CHECK,
    SCHEMA_BAD_REFERENCE,
    SCHEMA_NO_FIELDS,
    SUBSCHEMA_BAD_FIELD,
    SUBSCHEMA_BAD_TYPE,
    SUBSCHEMA_INIT_PREFIX,
    VALID_TYPES,
)


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
            "entity_checks": [{"only_one_of": list(ENTITY_CHECKERS)}],
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


def _add(errors: dict[str, str], path: str, message: str) -> None:
    errors[path] = f"{errors[path]}; {message}" if path in errors else message


def _lua_truthy(value: Any) -> bool:
    """Lua truthiness: only nil and false are false (``ngx.null`` is true)."""
    return value is not MISSING and value is not False


def _check_fields(record: Field, path: str, errors: dict[str, str]) -> None:
    """``check_fields`` in metaschema.lua, reporting by field path."""
    entries = record.get("fields")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not is_table(entry):
            _add(errors, join_path(path, "fields"), META_FIELDS_ARRAY)
            break
        if not entry:
            _add(errors, join_path(path, "fields"), META_FIELD_EMPTY)
            break
        name, field = next(iter(entry.items())) if isinstance(entry, dict) else ("1", entry[0])
        if is_table(field):
            _check_field(join_path(path, str(name)), field, record, errors)
        else:
            _add(errors, join_path(path, str(name)), META_TABLE % name)


def _check_field(path: str, field: Any, parent: Field, errors: dict[str, str]) -> None:
    """``check_field`` in metaschema.lua: companions, attributes per type, nested definitions."""
    if not isinstance(field, dict) or not _lua_truthy(field.get("type", MISSING)):
        _add(errors, path, META_TYPE)
        return
    ftype = field["type"]
    type_name = ftype if isinstance(ftype, str) else lua_tostring(ftype)
    required = _REQUIRED_ATTRIBUTES.get(type_name, ())
    if field.get("abstract") and type_name == "record":
        required = ()
    for attr in required:
        if not _lua_truthy(field.get(attr, MISSING)):
            _add(errors, path, META_REQUIRED % (type_name, attr))
    for attr in field:
        if attr in _ATTRIBUTE_TYPES and type_name not in _ATTRIBUTE_TYPES[attr]:
            _add(errors, path, META_ATTRIBUTE % (type_name, attr))
    for attr in ("elements", "keys", "values"):
        nested = field.get(attr, MISSING)
        if _lua_truthy(nested):
            if is_table(nested):
                _check_field(join_path(path, attr), nested, field, errors)
            else:
                _add(errors, path, META_TABLE % attr)
    json_schema = field.get("json_schema")
    if (
        type_name == "json"
        and isinstance(json_schema, dict)
        and json_schema.get("parent_subschema_key")
    ):
        key = json_schema["parent_subschema_key"]
        siblings = dict(each_field(parent)) if isinstance(parent.get("fields"), list) else {}
        where = join_path(path, "json_schema.parent_subschema_key")
        if key not in siblings:
            _add(errors, where, META_JSON_PARENT_KEY)
        elif siblings[key].get("type") != "string":
            _add(errors, where, META_JSON_PARENT_KEY_TYPE)
    if _lua_truthy(field.get("fields", MISSING)):
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
                child_path = join_path(path, name if name is not None else f"fields.{index}")
                _name_errors(entry_err, child_path, child, out)
        elif key in ("elements", "keys", "values"):
            _name_errors(sub, join_path(path, key), definition.get(key), out)
        else:
            _name_errors(sub, join_path(path, str(key)), None, out)


def _check_subschema(schema: Mapping[str, Any]) -> dict[str, str]:
    """``Schema.new`` + ``Schema.new_subschema`` for a plugin (kong/db/schema/init.lua).

    Top-level fields may only specialise fields of the ``plugins`` entity, keeping their type;
    ``foreign`` fields must reference a known entity (``get_foreign_schema_for_field``, checked
    here for nested ones too, where Kong would fail on the first config instead).
    """
    errors: dict[str, str] = {}
    plugin = lua_tostring(schema.get("name"))
    if not isinstance(schema.get("fields"), list):
        return {"fields": SCHEMA_NO_FIELDS}

    def foreign_refs(path: str, field: Field) -> None:
        if field.get("type") == "foreign" and field.get("reference") not in _FOREIGN_ENTITIES:
            reference = field.get("reference")
            _add(
                errors,
                path,
                SCHEMA_BAD_REFERENCE % ("nil" if reference is None else lua_tostring(reference)),
            )
        if field.get("type") == "record" and isinstance(field.get("fields"), list):
            for name, sub in each_field(field):
                foreign_refs(join_path(path, name), sub)

    for name, field in each_field(schema):
        foreign_refs(name, field)
    if errors:
        return errors
    for name, field in each_field(schema):
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
    raw_errors = validate_record(_META_SUBSCHEMA, schema)
    # run_self_check: the check function needs every non-nilable field present
    absent = [name for name in ("name", "fields") if schema.get(name, MISSING) is MISSING]
    for name in absent:
        raw_errors[name] = REQUIRED_FOR_ENTITY_CHECK
    errors: dict[str, str] = {}
    _name_errors(raw_errors, "", schema, errors)
    if not absent:
        _check_fields(schema, "", errors)
    if errors:
        pairs = sorted(
            errors.items(), key=lambda item: [error_path_key(p) for p in item[0].split(".")]
        )
        raise SchemaError(violation_summary(pairs), dict(pairs))
    sub_errors = _check_subschema(schema)
    if sub_errors:
        first = next(iter(sub_errors.values()))
        raise SchemaError(SUBSCHEMA_INIT_PREFIX + first, sub_errors)
