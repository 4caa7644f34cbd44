"""Kong's plugin-schema and plugin-config handling, as reproduced by ``kong_harness.schema``.

Sources in Kong's repository (each test names the one its rule comes from):
``kong/db/schema/metaschema.lua`` (MetaSubSchema, ``check_field``), ``kong/db/schema/init.lua``
(``validation_errors``, ``Schema.validators``, ``process_auto_fields``, ``validate``,
``entity_checkers``, ``new_subschema``), ``kong/db/schema/entity.lua``
(``make_records_required``), ``kong/db/schema/plugin_loader.lua`` (``load_subschema``),
``kong/db/errors.lua`` (``schema_violation``), ``kong/db/dao/init.lua`` and
``kong/runloop/plugins_iterator.lua`` (the ``select`` read path).
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kong_harness.schema import (
    ConfigError,
    KongSchemaViolation,
    LuaPatternError,
    SchemaError,
    UnsupportedLuaPattern,
    config_fields_of,
    lua_match,
    process_config,
    select_config,
    validate_plugin_schema,
)


def plugin_schema(
    *fields: dict[str, Any], name: str = "edge-demo", **config_attrs: Any
) -> dict[str, Any]:
    """What kong-pdk's ``--dump`` prints as ``Schema`` (kong_pdk/server.py get_plugin_info)."""
    return {
        "name": name,
        "fields": [{"config": {"type": "record", "fields": list(fields), **config_attrs}}],
    }


def one(name: str, **definition: Any) -> dict[str, Any]:
    return {name: definition}


def schema_errors(schema: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SchemaError) as info:
        validate_plugin_schema(schema)
    return info.value.errors


def config_errors(schema: dict[str, Any], config: Any) -> dict[str, Any]:
    with pytest.raises(ConfigError) as info:
        process_config(schema, config)
    return info.value.errors


def field_error(definition: dict[str, Any], value: Any) -> Any:
    """The error Kong reports for ``config.f = value`` with ``f`` defined as ``definition``."""
    return config_errors(plugin_schema(one("f", **definition)), {"f": value})["config"]["f"]


def accepts(definition: dict[str, Any], value: Any) -> Any:
    return process_config(plugin_schema(one("f", **definition)), {"f": value})["f"]


# The edge-demo schema, as the test plugin module (tests/support/plugins/demo.py) declares it.
DEMO_FIELDS = [
    one("mode", type="string", default="headers", one_of=["noop", "headers", "echo"]),
    one("header_name", type="string", default="X-Edge-Demo", len_min=1),
    one("greeting", type="string", default="hello"),
    one("exit_status", type="integer", between=[200, 599]),
    one("unguarded", type="boolean", default=False),
]
DEMO = plugin_schema(*DEMO_FIELDS)


# ------------------------------------------------------------------------------------------
# validate_plugin_schema: accepted schemas
# ------------------------------------------------------------------------------------------


def test_kong_pdk_schema_is_accepted() -> None:
    """metaschema.lua MetaSubSchema: the shape kong-pdk dumps validates."""
    validate_plugin_schema(DEMO)


def test_real_edge_demo_schema_is_accepted() -> None:
    """metaschema.lua: the schema the edge-demo module declares passes Kong's metaschema."""
    from tests.support.plugins import demo

    fields = json.loads(json.dumps(demo.Schema))
    validate_plugin_schema(plugin_schema(*fields, name=demo.NAME))


def test_rich_schema_is_accepted() -> None:
    """metaschema.lua field_schema: every attribute a JSON schema can carry, on its right type."""
    schema = plugin_schema(
        one(
            "limits",
            type="record",
            description="Limits per time window.",
            fields=[
                one("minute", type="integer", gt=0, default=60),
                one("policy", type="string", one_of=["local", "redis"], default="local"),
            ],
            entity_checks=[{"at_least_one_of": ["minute"]}],
        ),
        one(
            "paths",
            type="array",
            elements={"type": "string", "starts_with": "/"},
            len_max=10,
            default=[],
        ),
        one("scopes", type="set", elements={"type": "string", "match": "^[%w:]+$"}),
        one(
            "headers", type="map", keys={"type": "string"}, values={"type": "string", "len_max": 64}
        ),
        one("ratio", type="number", between=[0, 1], default=0.5),
        one("secret", type="string", referenceable=True, encrypted=True),
        one("id", type="string", uuid=True, auto=True),
        one(
            "pattern",
            type="string",
            is_regex=True,
            match_all=[{"pattern": "^%^", "err": "must be anchored"}],
            match_none=[{"pattern": "%s"}],
            match_any={"patterns": ["a", "b"]},
        ),
        one("consumer_ref", type="foreign", reference="consumers"),
        entity_checks=[
            {"mutually_exclusive": ["paths", "scopes"]},
            {
                "conditional": {
                    "if_field": "ratio",
                    "if_match": {"gt": 0.9},
                    "then_field": "secret",
                    "then_match": {"required": True},
                }
            },
        ],
    )
    validate_plugin_schema(schema)


def test_validation_does_not_mutate_the_schema() -> None:
    """plugin_loader.lua: MetaSubSchema:validate only reads the schema Kong then uses as is."""
    schema = plugin_schema(one("r", type="record", fields=[one("x", type="string")]))
    before = copy.deepcopy(schema)
    validate_plugin_schema(schema)
    assert schema == before


# ------------------------------------------------------------------------------------------
# validate_plugin_schema: rejections
# ------------------------------------------------------------------------------------------


def test_unknown_type_is_rejected() -> None:
    """metaschema.lua: ``type`` is one_of Schema.valid_types (init.lua)."""
    errors = schema_errors(plugin_schema(one("greeting", type="text")))
    assert errors["config.greeting.type"].startswith("expected one of: array, set, string,")


def test_missing_type_is_rejected() -> None:
    """metaschema.lua: type is required; check_field says 'missing type declaration'."""
    errors = schema_errors(plugin_schema(one("greeting", default="hi")))
    assert errors["config.greeting.type"] == "required field missing"
    assert errors["config.greeting"] == "missing type declaration"


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"type": "array"}, "field of type 'array' must declare 'elements'"),
        ({"type": "set"}, "field of type 'set' must declare 'elements'"),
        ({"type": "map", "keys": {"type": "string"}}, "field of type 'map' must declare 'values'"),
        ({"type": "map", "values": {"type": "string"}}, "field of type 'map' must declare 'keys'"),
        ({"type": "record"}, "field of type 'record' must declare 'fields'"),
        ({"type": "json"}, "field of type 'json' must declare 'json_schema'"),
    ],
)
def test_missing_companion_is_rejected(definition: dict[str, Any], message: str) -> None:
    """metaschema.lua check_field: required_attributes per type."""
    assert schema_errors(plugin_schema(one("f", **definition)))["config.f"] == message


def test_abstract_record_needs_no_fields() -> None:
    """metaschema.lua check_field: an abstract record is exempt from declaring 'fields'."""
    validate_plugin_schema(plugin_schema(one("f", type="record", abstract=True)))


def test_nested_element_definition_is_checked() -> None:
    """metaschema.lua check_field: elements/keys/values are checked recursively."""
    errors = schema_errors(plugin_schema(one("f", type="array", elements={"type": "array"})))
    assert errors["config.f.elements"] == "field of type 'array' must declare 'elements'"


def test_non_table_elements_is_rejected() -> None:
    """metaschema.lua check_field: meta_errors.TABLE for a nested attribute."""
    errors = schema_errors(plugin_schema(one("f", type="array", elements="string")))
    assert errors["config.f"] == "'elements' must be a table"
    assert errors["config.f.elements"] == "expected a record"


def test_unknown_attribute_is_rejected() -> None:
    """metaschema.lua field_schema: attributes not listed are 'unknown field' (init.lua)."""
    errors = schema_errors(plugin_schema(one("greeting", type="string", colour="red")))
    assert errors == {"config.greeting.colour": "unknown field"}


def test_nilable_is_not_a_field_attribute() -> None:
    """metaschema.lua: 'nilable' is set on the metaschema's own fields, not allowed in schemas."""
    errors = schema_errors(plugin_schema(one("f", type="string", nilable=True)))
    assert errors == {"config.f.nilable": "unknown field"}


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("required", "yes", "expected a boolean"),
        ("one_of", "a", "expected an array"),
        ("len_min", 1.5, "expected an integer"),
        ("match", 5, "expected a string"),
        ("default", 5, "expected a string"),
        ("description", "short", "length must be at least 10"),
        ("custom_validator", "return true", "expected a function"),
    ],
)
def test_wrong_attribute_value_type_is_rejected(attribute: str, value: Any, message: str) -> None:
    """metaschema.lua field_schema/validators: each attribute has a declared type."""
    errors = schema_errors(plugin_schema(one("f", type="string", **{attribute: value})))
    assert errors == {f"config.f.{attribute}": message}


def test_between_needs_two_numbers() -> None:
    """metaschema.lua validators: between = array of number, len_eq = 2."""
    assert (
        schema_errors(plugin_schema(one("f", type="integer", between=[1])))["config.f.between"]
        == "length must be 2"
    )
    assert (
        schema_errors(plugin_schema(one("f", type="integer", between=[1, "x"])))[
            "config.f.between.2"
        ]
        == "expected a number"
    )


def test_match_all_entries_need_a_pattern() -> None:
    """metaschema.lua match_list: records with a required 'pattern'."""
    errors = schema_errors(plugin_schema(one("f", type="string", match_all=[{"err": "e"}])))
    assert errors == {"config.f.match_all.1.pattern": "required field missing"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"type": "string", "between": [1, 2]},
            "field of type 'string' cannot have attribute 'between'",
        ),
        (
            {"type": "boolean", "one_of": [True]},
            "field of type 'boolean' cannot have attribute 'one_of'",
        ),
        (
            {"type": "integer", "match": "%d"},
            "field of type 'integer' cannot have attribute 'match'",
        ),
        (
            {"type": "boolean", "len_eq": 1},
            "field of type 'boolean' cannot have attribute 'len_eq'",
        ),
        ({"type": "integer", "uuid": True}, "field of type 'integer' cannot have attribute 'uuid'"),
    ],
)
def test_attribute_not_allowed_for_type(definition: dict[str, Any], message: str) -> None:
    """metaschema.lua check_field: attribute_types restricts some attributes to some types."""
    assert schema_errors(plugin_schema(one("f", **definition)))["config.f"] == message


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"type": "string", "default": ""}, "length must be at least 1"),
        ({"type": "string", "default": "x", "one_of": ["a", "b"]}, "expected one of: a, b"),
        ({"type": "integer", "default": 1.5}, "expected an integer"),
        ({"type": "integer", "default": 0, "between": [1, 10]}, "value should be between 1 and 10"),
        ({"type": "boolean", "default": "false"}, "expected a boolean"),
    ],
)
def test_default_must_validate_against_its_own_field(
    definition: dict[str, Any], message: str
) -> None:
    """metaschema.lua: default = { type = "self" } (validate_fields in init.lua)."""
    assert schema_errors(plugin_schema(one("f", **definition))) == {"config.f.default": message}


def test_record_and_array_defaults_are_validated_deeply() -> None:
    """metaschema.lua: a record/array default is validated like a value of that field."""
    record = one("r", type="record", fields=[one("x", type="string")], default={"y": 1})
    assert schema_errors(plugin_schema(record)) == {"config.r.default.y": "unknown field"}
    array = one("a", type="array", elements={"type": "integer"}, default=[1, "two"])
    assert schema_errors(plugin_schema(array)) == {"config.a.default.2": "expected an integer"}


def test_nested_field_errors_name_the_path() -> None:
    """metaschema.lua fields_array: nested definitions inside elements records are validated."""
    schema = plugin_schema(
        one(
            "rules",
            type="array",
            elements={"type": "record", "fields": [one("weight", type="integer", default="heavy")]},
        )
    )
    assert schema_errors(schema) == {"config.rules.elements.weight.default": "expected an integer"}


def test_field_entry_must_have_exactly_one_key() -> None:
    """metaschema.lua fields_array: each entry is a map with len_eq = 1."""
    schema = plugin_schema({"a": {"type": "string"}, "b": {"type": "string"}})
    assert schema_errors(schema) == {"config.fields.1": "length must be 1"}


def test_field_entry_must_be_a_table() -> None:
    """metaschema.lua check_fields: FIELDS_ARRAY, plus the map type check."""
    errors = schema_errors(plugin_schema("greeting"))
    assert errors["config.fields.1"] == "expected a map"
    assert errors["config.fields"] == "each entry in fields must be a sub-table"


def test_field_definition_must_be_a_table() -> None:
    """metaschema.lua check_fields: meta_errors.TABLE for the definition itself."""
    errors = schema_errors(plugin_schema({"greeting": "string"}))
    assert errors["config.greeting"] == "expected a record; 'greeting' must be a table"


def test_unique_across_ws_requires_unique() -> None:
    """metaschema.lua field_entity_checks: conditional unique_across_ws → unique = true."""
    errors = schema_errors(plugin_schema(one("f", type="string", unique_across_ws=True)))
    assert errors == {
        "config.f": "failed conditional validation given value of field 'unique_across_ws'",
        "config.f.unique": "required field missing",
    }


def test_entity_check_with_unknown_checker_is_rejected() -> None:
    """metaschema.lua entity_checkers: only Schema.entity_checkers names are known."""
    errors = schema_errors(
        plugin_schema(one("a", type="string"), entity_checks=[{"all_or_nothing": ["a"]}])
    )
    assert errors["config.entity_checks.1.all_or_nothing"] == "unknown field"


def test_entity_check_entry_names_exactly_one_checker() -> None:
    """metaschema.lua entity_checks_schema: only_one_of over the checker names."""
    errors = schema_errors(
        plugin_schema(
            one("a", type="string"),
            entity_checks=[{"at_least_one_of": ["a"], "only_one_of": ["a"]}],
        )
    )
    assert errors["config.entity_checks.1"].startswith(
        "exactly one of these fields must be non-empty: 'at_least_one_of', "
    )


def test_shorthand_fields_cannot_come_from_a_plugin_server() -> None:
    """metaschema.lua make_shorthand_field_schema: 'func' is a required function."""
    schema = dict(DEMO, shorthand_fields=[{"old": {"type": "string"}}])
    assert schema_errors(schema) == {"shorthand_fields.1.func": "required field missing"}


def test_unknown_top_level_key_is_rejected() -> None:
    """metaschema.lua MetaSubSchema: only name/fields/entity_checks/... at the top."""
    assert schema_errors(dict(DEMO, priority=10)) == {"priority": "unknown field"}


def test_name_and_fields_are_required() -> None:
    """metaschema.lua MetaSubSchema + init.lua run_self_check (non-nilable fields)."""
    assert schema_errors({"fields": []}) == {"name": "field required for entity check"}
    assert schema_errors({"name": "x"}) == {"fields": "field required for entity check"}
    assert schema_errors({"name": "x", "fields": {"config": {}}}) == {"fields": "expected an array"}


def test_non_table_schema_is_rejected() -> None:
    """init.lua validate_fields asserts an input table (BAD_INPUT)."""
    with pytest.raises(SchemaError, match="expected an input table"):
        validate_plugin_schema(None)


def test_top_level_field_must_specialise_a_plugin_field() -> None:
    """init.lua Schema.new_subschema: SUBSCHEMA_BAD_FIELD, prefixed by plugin_loader.lua."""
    schema = {
        "name": "edge-demo",
        "fields": [{"config": {"type": "record", "fields": []}}, {"limits": {"type": "string"}}],
    }
    with pytest.raises(SchemaError) as info:
        validate_plugin_schema(schema)
    assert str(info.value) == (
        "error initializing schema for plugin: error in definition of "
        "'edge-demo': limits: cannot create a new field"
    )


def test_top_level_field_keeps_its_type() -> None:
    """init.lua compatible_fields: protocols stays a set of strings."""
    schema = {
        "name": "p",
        "fields": [{"protocols": {"type": "array", "elements": {"type": "string"}}}],
    }
    with pytest.raises(SchemaError, match="protocols: cannot change type in a specialized field"):
        validate_plugin_schema(schema)


def test_config_may_be_json_and_protocols_may_be_narrowed() -> None:
    """init.lua compatible_fields: record→json allowed; same element type allowed."""
    validate_plugin_schema(
        {
            "name": "p",
            "fields": [
                {"protocols": {"type": "set", "elements": {"type": "string", "one_of": ["http"]}}},
                {"consumer": {"type": "foreign", "reference": "consumers", "eq": None}},
            ],
        }
    )


def test_foreign_needs_a_known_reference() -> None:
    """init.lua get_foreign_schema_for_field: SCHEMA_BAD_REFERENCE."""
    with pytest.raises(SchemaError, match="schema refers to an invalid foreign entity: nil"):
        validate_plugin_schema(plugin_schema(one("who", type="foreign")))
    with pytest.raises(SchemaError, match="invalid foreign entity: people"):
        validate_plugin_schema(plugin_schema(one("who", type="foreign", reference="people")))


def test_schema_error_message_is_kong_like() -> None:
    """errors.lua schema_violation: 'schema violation (...)' / 'N schema violations (...)'."""
    with pytest.raises(SchemaError) as info:
        validate_plugin_schema(
            plugin_schema(one("a", type="array"), one("b", type="string", foo=1))
        )
    assert str(info.value) == (
        "2 schema violations (config.a: field of type 'array' must "
        "declare 'elements'; config.b.foo: unknown field)"
    )
    assert isinstance(info.value, KongSchemaViolation)


# ------------------------------------------------------------------------------------------
# process_config: defaults and nulls
# ------------------------------------------------------------------------------------------


def test_defaults_fill_and_unset_fields_are_null() -> None:
    """init.lua process_auto_fields / handle_missing_field: default, else ngx.null."""
    assert process_config(DEMO, {"mode": "noop"}) == {
        "mode": "noop",
        "header_name": "X-Edge-Demo",
        "greeting": "hello",
        "exit_status": None,
        "unguarded": False,
    }


def test_absent_config_gets_every_default() -> None:
    """entity.lua make_records_required: config is required, so it is materialised."""
    assert process_config(DEMO, None) == process_config(DEMO, {})
    assert process_config(DEMO, None)["mode"] == "headers"


def test_explicit_null_stays_null() -> None:
    """init.lua adjust_field_for_context: a given null is kept (and valid when optional)."""
    assert process_config(DEMO, {"greeting": None})["greeting"] is None


def test_input_config_is_not_mutated() -> None:
    """init.lua process_auto_fields works on a deep copy of the input."""
    config = {"mode": "noop"}
    process_config(DEMO, config)
    assert config == {"mode": "noop"}


NESTED = plugin_schema(
    one(
        "limits",
        type="record",
        fields=[
            one("minute", type="integer", default=60),
            one("window", type="record", fields=[one("size", type="integer", default=10)]),
            one("optional", type="record", required=False, fields=[one("x", type="string")]),
        ],
    ),
    one(
        "rules",
        type="array",
        default=[],
        elements={
            "type": "record",
            "fields": [
                one("path", type="string", required=True),
                one("weight", type="number", default=1),
                one("inner", type="record", fields=[one("k", type="string", default="v")]),
            ],
        },
    ),
)


def test_absent_nested_records_get_their_sub_defaults() -> None:
    """entity.lua make_records_required + init.lua handle_missing_field (record branch)."""
    assert process_config(NESTED, {})["limits"] == {
        "minute": 60,
        "window": {"size": 10},
        "optional": None,
    }


def test_partial_nested_record_is_completed() -> None:
    """init.lua adjust_field_for_context: a given record is processed field by field."""
    assert process_config(NESTED, {"limits": {"window": {}}})["limits"]["window"] == {"size": 10}


def test_null_required_record_is_an_error() -> None:
    """entity.lua: nested records are required; init.lua validate: null → REQUIRED."""
    assert config_errors(NESTED, {"limits": None}) == {
        "config": {"limits": "required field missing"}
    }


def test_array_of_records_gets_element_defaults() -> None:
    """init.lua adjust_field_for_context: array items are adjusted with 'elements'.

    make_records_required (entity.lua) does not reach records inside arrays, so an absent
    nested record there becomes null rather than being materialised.
    """
    result = process_config(NESTED, {"rules": [{"path": "/a"}, {"path": "/b", "weight": 2.5}]})
    assert result["rules"] == [
        {"path": "/a", "weight": 1, "inner": None},
        {"path": "/b", "weight": 2.5, "inner": None},
    ]


def test_array_of_records_errors_are_keyed_by_position() -> None:
    """init.lua validate_elements: errors indexed 1..n, nested record errors as tables."""
    assert config_errors(NESTED, {"rules": [{"path": "/a"}, {"weight": "x"}]}) == {
        "config": {
            "rules": {"2": {"path": "required field missing", "weight": "expected a number"}}
        }
    }


def test_default_is_deep_copied() -> None:
    """init.lua handle_missing_field: cycle_aware_deep_copy(field.default)."""
    schema = plugin_schema(one("paths", type="array", elements={"type": "string"}, default=["/a"]))
    first = process_config(schema, {})
    first["paths"].append("/mutated")
    assert process_config(schema, {})["paths"] == ["/a"]
    assert schema["fields"][0]["config"]["fields"][0]["paths"]["default"] == ["/a"]


def test_set_is_deduplicated() -> None:
    """init.lua make_set: repeated values are dropped, first occurrences kept."""
    schema = plugin_schema(one("tags", type="set", elements={"type": "string"}))
    assert process_config(schema, {"tags": ["b", "a", "b", "a"]})["tags"] == ["b", "a"]


def test_auto_uuid_is_generated() -> None:
    """init.lua process_auto_fields: auto + uuid on insert generates a UUID."""
    schema = plugin_schema(one("id", type="string", uuid=True, auto=True))
    value = process_config(schema, {})["id"]
    assert str(uuid.UUID(value)) == value
    assert process_config(schema, {"id": value})["id"] == value


def test_auto_string_is_random() -> None:
    """init.lua process_auto_fields: auto string → kong.tools.rand.random_string (32 chars)."""
    schema = plugin_schema(one("token", type="string", auto=True))
    first, second = (process_config(schema, {})["token"] for _ in range(2))
    assert len(first) == 32 and first.isalnum() and first != second


def test_integral_numbers_come_out_as_ints() -> None:
    """Lua has one number type and cjson encodes 3.0 as 3, so the plugin sees an int."""
    schema = plugin_schema(one("n", type="integer"), one("x", type="number"))
    result = process_config(schema, {"n": 3.0, "x": 2.0})
    assert result == {"n": 3, "x": 2}
    assert isinstance(result["n"], int)


def test_schema_without_config_field() -> None:
    """plugins.lua: config is abstract until a sub-schema specialises it (init.lua)."""
    schema = {"name": "bare", "fields": []}
    assert process_config(schema, None) == {}
    assert config_errors(schema, {"a": 1}) == {
        "config": "error in schema definition: abstract field was not specialized"
    }


# ------------------------------------------------------------------------------------------
# process_config: types
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "value", "message"),
    [
        ({"type": "string"}, 5, "expected a string"),
        ({"type": "integer"}, 1.5, "expected an integer"),
        ({"type": "integer"}, "1", "expected an integer"),
        ({"type": "integer"}, True, "expected an integer"),
        ({"type": "integer"}, float("inf"), "expected an integer"),
        ({"type": "number"}, "1", "expected a number"),
        ({"type": "number"}, False, "expected a number"),
        ({"type": "boolean"}, 1, "expected a boolean"),
        ({"type": "boolean"}, "true", "expected a boolean"),
        ({"type": "array", "elements": {"type": "string"}}, "a", "expected an array"),
        ({"type": "array", "elements": {"type": "string"}}, {"a": 1}, "expected an array"),
        ({"type": "set", "elements": {"type": "string"}}, "a", "expected a set"),
        (
            {"type": "map", "keys": {"type": "string"}, "values": {"type": "string"}},
            "a",
            "expected a map",
        ),
        ({"type": "record", "fields": []}, "a", "expected a record"),
    ],
)
def test_type_errors_use_kong_messages(
    definition: dict[str, Any], value: Any, message: str
) -> None:
    """init.lua validate_field + validation_errors: the type messages."""
    assert field_error(definition, value) == message


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        ({"type": "integer"}, 3),
        ({"type": "integer"}, -7.0),
        ({"type": "number"}, 0.25),
        ({"type": "boolean"}, False),
        ({"type": "string"}, "x"),
        ({"type": "array", "elements": {"type": "integer"}}, [1, 2]),
        ({"type": "json", "json_schema": {"inline": {"type": "object"}}}, {"any": ["thing"]}),
    ],
)
def test_values_of_the_right_type_pass(definition: dict[str, Any], value: Any) -> None:
    """init.lua validate_field: integer is a whole number, number any number, etc."""
    assert accepts(definition, value) == value


def test_empty_table_is_an_array_and_a_record() -> None:
    """Lua cannot tell {} from []: an empty table is a valid array, set, map and record."""
    schema = plugin_schema(
        one("a", type="array", elements={"type": "string"}),
        one("r", type="record", fields=[one("x", type="string", default="d")]),
        one("m", type="map", keys={"type": "string"}, values={"type": "string"}),
    )
    assert process_config(schema, {"a": {}, "r": [], "m": []}) == {
        "a": [],
        "r": {"x": "d"},
        "m": {},
    }


def test_empty_string_is_rejected_by_default() -> None:
    """init.lua validate_field: strings get len_min = 1 unless the field sets len_min."""
    assert field_error({"type": "string"}, "") == "length must be at least 1"
    assert accepts({"type": "string", "len_min": 0}, "") == ""


def test_array_elements_are_required() -> None:
    """init.lua validate_elements: elements.required = true, so a null item fails."""
    assert field_error({"type": "array", "elements": {"type": "string"}}, ["a", None]) == {
        "2": "required field missing"
    }


def test_set_element_errors_are_keyed_by_position() -> None:
    """init.lua validate_field (set): same per-item errors as arrays."""
    assert field_error({"type": "set", "elements": {"type": "string"}}, ["a", 1]) == {
        "2": "expected a string"
    }


def test_map_reports_the_first_bad_key_or_value() -> None:
    """init.lua validate_field (map): returns the key's or value's own error, unkeyed."""
    definition = {
        "type": "map",
        "keys": {"type": "string", "match": "^x"},
        "values": {"type": "integer"},
    }
    assert field_error(definition, {"xa": "1"}) == "expected an integer"
    assert field_error(definition, {"ya": 1}) == "invalid value: ya"
    assert accepts(definition, {"xa": 1}) == {"xa": 1}


def test_map_of_records_gets_defaults() -> None:
    """init.lua adjust_field_for_context: map values are adjusted with 'values'."""
    definition = {
        "type": "map",
        "keys": {"type": "string"},
        "values": {"type": "record", "fields": [one("w", type="integer", default=1)]},
    }
    assert accepts(definition, {"a": {}}) == {"a": {"w": 1}}


def test_foreign_value_needs_a_uuid_id() -> None:
    """init.lua validate_field (foreign) → validate_primary_key of the referenced entity."""
    definition = {"type": "foreign", "reference": "consumers"}
    assert field_error(definition, {"id": "nope"}) == {"id": "expected a valid UUID"}
    assert field_error(definition, {}) == {"id": "missing primary key"}
    good = {"id": str(uuid.uuid4())}
    assert accepts(definition, good) == good


def test_unknown_field_is_rejected() -> None:
    """init.lua validate_fields / resolve_field: validation_errors.UNKNOWN."""
    assert config_errors(DEMO, {"greting": "hi"}) == {"config": {"greting": "unknown field"}}


def test_unknown_nested_field_is_rejected() -> None:
    """init.lua validate_field (record): nested records validate their own keys."""
    assert config_errors(NESTED, {"limits": {"hour": 1}}) == {
        "config": {"limits": {"hour": "unknown field"}}
    }


def test_required_field_missing() -> None:
    """init.lua Schema:validate: required and nil/null → REQUIRED."""
    schema = plugin_schema(one("issuer", type="string", required=True))
    assert config_errors(schema, {}) == {"config": {"issuer": "required field missing"}}
    assert config_errors(schema, {"issuer": None}) == {
        "config": {"issuer": "required field missing"}
    }


def test_required_field_with_default_is_satisfied() -> None:
    """init.lua handle_missing_field: the default is applied before validation."""
    schema = plugin_schema(one("issuer", type="string", required=True, default="edge"))
    assert process_config(schema, {}) == {"issuer": "edge"}


def test_config_must_be_a_record() -> None:
    """init.lua validate_field (record) on the plugins entity's config field."""
    assert config_errors(DEMO, "mode=noop") == {"config": "expected a record"}


# ------------------------------------------------------------------------------------------
# process_config: validators (Schema.validators in init.lua)
# ------------------------------------------------------------------------------------------


def test_one_of() -> None:
    """init.lua validators.one_of: ONE_OF lists the options joined by ', '."""
    assert field_error({"type": "string", "one_of": ["a", "b"]}, "c") == "expected one of: a, b"
    assert field_error({"type": "integer", "one_of": [1, 2]}, 3) == "expected one of: 1, 2"
    assert accepts({"type": "integer", "one_of": [1, 2]}, 2) == 2


def test_not_one_of() -> None:
    """init.lua validators.not_one_of: NOT_ONE_OF."""
    assert field_error({"type": "string", "not_one_of": ["admin"]}, "admin") == (
        "must not be one of: admin"
    )
    assert accepts({"type": "string", "not_one_of": ["admin"]}, "user") == "user"


def test_between() -> None:
    """init.lua validators.between: inclusive, BETWEEN with %d."""
    definition = {"type": "integer", "between": [1, 10]}
    assert field_error(definition, 0) == "value should be between 1 and 10"
    assert field_error(definition, 11) == "value should be between 1 and 10"
    assert accepts(definition, 1) == 1
    assert accepts(definition, 10) == 10


def test_gt() -> None:
    """init.lua validators.gt: strictly greater, GT."""
    assert field_error({"type": "number", "gt": 0}, 0) == "value must be greater than 0"
    assert accepts({"type": "number", "gt": 0}, 0.1) == 0.1


def test_eq_and_ne() -> None:
    """init.lua validators.eq / ne: EQ and NE."""
    assert field_error({"type": "boolean", "eq": True}, False) == "value must be true"
    assert field_error({"type": "string", "ne": "x"}, "x") == "value must not be x"
    assert accepts({"type": "string", "ne": "x"}, "y") == "y"


def test_eq_null_means_must_be_unset() -> None:
    """init.lua validate_field: field.eq == null rejects any value."""
    assert field_error({"type": "string", "eq": None}, "x") == "value must be null"
    assert process_config(plugin_schema(one("f", type="string", eq=None)), {}) == {"f": None}


def test_length_validators_on_strings_count_bytes() -> None:
    """init.lua make_length_validator: Lua's # counts bytes."""
    assert field_error({"type": "string", "len_min": 3}, "ab") == "length must be at least 3"
    assert field_error({"type": "string", "len_max": 3}, "abcd") == "length must be at most 3"
    assert field_error({"type": "string", "len_eq": 2}, "é!") == "length must be 2"
    assert accepts({"type": "string", "len_eq": 2}, "é") == "é"


def test_length_validators_on_arrays_and_maps() -> None:
    """init.lua make_length_validator: item count; maps count their pairs."""
    array = {"type": "array", "elements": {"type": "string"}, "len_min": 1}
    assert field_error(array, []) == "length must be at least 1"
    mapping = {
        "type": "map",
        "keys": {"type": "string"},
        "values": {"type": "string"},
        "len_max": 1,
    }
    assert field_error(mapping, {"a": "1", "b": "2"}) == "length must be at most 1"


def test_match_and_not_match() -> None:
    """init.lua validators.match / not_match: Lua patterns, 'invalid value: <value>'."""
    assert field_error({"type": "string", "match": "^%d+$"}, "12a") == "invalid value: 12a"
    assert accepts({"type": "string", "match": "^%d+$"}, "123") == "123"
    assert field_error({"type": "string", "not_match": "%s"}, "a b") == "invalid value: a b"
    assert accepts({"type": "string", "not_match": "%s"}, "ab") == "ab"


def test_match_all_and_match_none_use_their_err() -> None:
    """init.lua validators.match_all / match_none: the rule's err, else MATCH_*."""
    definition = {
        "type": "string",
        "match_all": [{"pattern": "^/", "err": "must start with a slash"}, {"pattern": "[^/]$"}],
        "match_none": [{"pattern": "%.%.", "err": "no dot segments"}],
    }
    assert field_error(definition, "a/") == "must start with a slash"
    assert field_error(definition, "/a/") == "invalid value: /a/"
    assert field_error(definition, "/a/../b") == "no dot segments"
    assert accepts(definition, "/a/b") == "/a/b"


def test_match_any() -> None:
    """init.lua validators.match_any: one pattern must match, else arg.err."""
    definition = {
        "type": "string",
        "match_any": {"patterns": ["^https://", "^http://localhost"], "err": "must be https"},
    }
    assert field_error(definition, "http://example.com") == "must be https"
    assert accepts(definition, "https://example.com") == "https://example.com"


def test_starts_with() -> None:
    """init.lua validators.starts_with: STARTS_WITH."""
    assert field_error({"type": "string", "starts_with": "/"}, "a") == "should start with: /"
    assert accepts({"type": "string", "starts_with": "/"}, "/a") == "/a"


def test_uuid() -> None:
    """init.lua validators.uuid: 36 characters, case-insensitive hex pattern, UUID message."""
    assert field_error({"type": "string", "uuid": True}, "not-a-uuid") == "expected a valid UUID"
    value = str(uuid.uuid4()).upper()
    assert accepts({"type": "string", "uuid": True}, value) == value


def test_timestamp() -> None:
    """init.lua validators.timestamp: value > 0, TIMESTAMP."""
    assert field_error({"type": "integer", "timestamp": True}, 0) == "expected a valid timestamp"
    assert accepts({"type": "integer", "timestamp": True}, 1) == 1


def test_is_regex() -> None:
    """init.lua validators.is_regex: IS_REGEX with the value."""
    assert field_error({"type": "string", "is_regex": True}, "a(") == "not a valid regex: a("
    assert accepts({"type": "string", "is_regex": True}, "^a+$") == "^a+$"


def test_contains() -> None:
    """init.lua validators.contains: CONTAINS."""
    definition = {"type": "array", "elements": {"type": "string"}, "contains": "openid"}
    assert field_error(definition, ["email"]) == "expected to contain: openid"
    assert accepts(definition, ["email", "openid"]) == ["email", "openid"]


def test_mutually_exclusive_subsets() -> None:
    """init.lua validators.mutually_exclusive_subsets: MUTUALLY_EXCLUSIVE_SETS."""
    definition = {
        "type": "set",
        "elements": {"type": "string"},
        "mutually_exclusive_subsets": [["http", "https"], ["tcp"]],
    }
    assert field_error(definition, ["http", "tcp"]) == (
        "these sets are mutually exclusive: ('http', 'https'), ('tcp')"
    )
    assert accepts(definition, ["http", "https"]) == ["http", "https"]


def test_field_err_overrides_validator_messages() -> None:
    """init.lua validate_field: 'return nil, field.err or err' for validator failures."""
    definition = {"type": "string", "one_of": ["a"], "err": "pick a"}
    assert field_error(definition, "b") == "pick a"
    assert field_error(definition, 1) == "expected a string"


def test_validators_run_in_kong_order() -> None:
    """init.lua Schema.validators_order: one_of is checked before len_min."""
    definition = {"type": "string", "len_min": 5, "one_of": ["abcdef"]}
    assert field_error(definition, "ab") == "expected one of: abcdef"


def test_vault_reference_skips_validators() -> None:
    """init.lua validate_field: a referenceable string holding a reference is accepted."""
    definition = {"type": "string", "referenceable": True, "len_min": 40}
    assert accepts(definition, "{vault://env/edge-secret}") == "{vault://env/edge-secret}"
    assert field_error(definition, "short") == "length must be at least 40"


# ------------------------------------------------------------------------------------------
# process_config: entity checks (Schema.entity_checkers in init.lua)
# ------------------------------------------------------------------------------------------


def checked(check: dict[str, Any], *fields: dict[str, Any]) -> dict[str, Any]:
    names = fields or (one("a", type="string"), one("b", type="string"), one("c", type="integer"))
    return plugin_schema(*names, entity_checks=[check])


def entity_errors(schema: dict[str, Any], config: dict[str, Any]) -> Any:
    return config_errors(schema, config)["config"]["@entity"]


def test_at_least_one_of() -> None:
    """init.lua entity_checkers.at_least_one_of: AT_LEAST_ONE_OF with quoted names."""
    schema = checked({"at_least_one_of": ["a", "b"]})
    assert entity_errors(schema, {}) == ["at least one of these fields must be non-empty: 'a', 'b'"]
    assert process_config(schema, {"b": "x"})["b"] == "x"


def test_only_one_of() -> None:
    """init.lua entity_checkers.only_one_of: ONLY_ONE_OF."""
    schema = checked({"only_one_of": ["a", "b"]})
    assert entity_errors(schema, {"a": "x", "b": "y"}) == [
        "exactly one of these fields must be non-empty: 'a', 'b'"
    ]
    process_config(schema, {"a": "x"})


def test_mutually_exclusive() -> None:
    """init.lua entity_checkers.mutually_exclusive: MUTUALLY_EXCLUSIVE."""
    schema = checked({"mutually_exclusive": ["a", "b"]})
    assert entity_errors(schema, {"a": "x", "b": "y"}) == [
        "only one or none of these fields must be set: 'a', 'b'"
    ]
    process_config(schema, {})


def test_mutually_required() -> None:
    """init.lua entity_checkers.mutually_required: MUTUALLY_REQUIRED."""
    schema = checked({"mutually_required": ["a", "b"]})
    assert entity_errors(schema, {"a": "x"}) == [
        "all or none of these fields must be set: 'a', 'b'"
    ]
    process_config(schema, {"a": "x", "b": "y"})


def test_distinct() -> None:
    """init.lua entity_checkers.distinct: DISTINCT."""
    schema = checked({"distinct": ["a", "b"]})
    assert entity_errors(schema, {"a": "x", "b": "x"}) == [
        "values of these fields must be distinct: 'a', 'b'"
    ]
    process_config(schema, {"a": "x", "b": "y"})


def test_mutually_exclusive_sets() -> None:
    """init.lua entity_checkers.mutually_exclusive_sets: both sets in the message."""
    schema = checked({"mutually_exclusive_sets": {"set1": ["a"], "set2": ["b", "c"]}})
    assert entity_errors(schema, {"a": "x", "c": 1}) == [
        "these sets are mutually exclusive: ('a'), ('c')"
    ]
    process_config(schema, {"b": "x", "c": 1})


def test_conditional_required() -> None:
    """init.lua entity_checkers.conditional: then_match.required → REQUIRED on then_field."""
    schema = checked(
        {
            "conditional": {
                "if_field": "a",
                "if_match": {"eq": "redis"},
                "then_field": "b",
                "then_match": {"required": True},
            }
        }
    )
    assert config_errors(schema, {"a": "redis"}) == {
        "config": {
            "b": "required field missing",
            "@entity": ["failed conditional validation given value of field 'a'"],
        }
    }
    process_config(schema, {"a": "local"})
    process_config(schema, {"a": "redis", "b": "host"})


def test_conditional_then_match_validator_and_then_err() -> None:
    """init.lua entity_checkers.conditional: then_match runs against the then_field schema."""
    schema = checked(
        {
            "conditional": {
                "if_field": "a",
                "if_match": {"one_of": ["big"]},
                "then_field": "c",
                "then_match": {"between": [100, 200]},
                "then_err": "'%s' is big",
            }
        }
    )
    assert config_errors(schema, {"a": "big", "c": 5}) == {
        "config": {"c": "value should be between 100 and 200", "@entity": ["'a' is big"]}
    }


def test_conditional_at_least_one_of() -> None:
    """init.lua entity_checkers.conditional_at_least_one_of."""
    schema = checked(
        {
            "conditional_at_least_one_of": {
                "if_field": "a",
                "if_match": {"eq": "jwt"},
                "then_at_least_one_of": ["b", "c"],
            }
        }
    )
    assert entity_errors(schema, {"a": "jwt"}) == [
        "at least one of these fields must be non-empty: 'b', 'c'"
    ]
    process_config(schema, {"a": "jwt", "c": 1})
    process_config(schema, {"a": "basic"})


def test_entity_checks_of_nested_records() -> None:
    """init.lua validate_field (record): the record's own entity_checks run inside it."""
    schema = plugin_schema(
        one(
            "redis",
            type="record",
            fields=[one("host", type="string"), one("socket", type="string")],
            entity_checks=[{"only_one_of": ["host", "socket"]}],
        )
    )
    assert config_errors(schema, {"redis": {}}) == {
        "config": {
            "redis": {
                "@entity": ["exactly one of these fields must be non-empty: 'host', 'socket'"]
            }
        }
    }


def test_top_level_entity_checks_use_config_paths() -> None:
    """init.lua run_entity_checks on the plugins entity with the sub-schema's checks."""
    schema = dict(DEMO, entity_checks=[{"at_least_one_of": ["config.exit_status"]}])
    assert config_errors(schema, {}) == {
        "@entity": ["at least one of these fields must be non-empty: 'config.exit_status'"]
    }
    process_config(schema, {"exit_status": 204})


# ------------------------------------------------------------------------------------------
# Error summaries (kong/db/errors.lua)
# ------------------------------------------------------------------------------------------


def test_config_error_summary_single() -> None:
    """errors.lua schema_violation: 'schema violation (field.sub: message)'."""
    with pytest.raises(ConfigError) as info:
        process_config(DEMO, {"greeting": 5})
    assert str(info.value) == "schema violation (config.greeting: expected a string)"
    assert info.value.errors == {"config": {"greeting": "expected a string"}}
    assert isinstance(info.value, KongSchemaViolation)


def test_config_error_summary_multiple_sorted_and_nested() -> None:
    """errors.lua schema_violation: count, sorted keys, '; ' separated."""
    with pytest.raises(ConfigError) as info:
        process_config(NESTED, {"rules": [{"weight": "x"}], "limits": {"minute": "m"}})
    assert str(info.value) == (
        "3 schema violations (config.limits.minute: expected an integer; "
        "config.rules.1.path: required field missing; config.rules.1.weight: expected a number)"
    )


# ------------------------------------------------------------------------------------------
# Lua patterns (lstrlib semantics used by init.lua's match validators)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "pattern", "expected"),
    [
        ("abc123", "%d+", True),
        ("abc", "%d", False),
        ("abc", "^%a+$", True),
        ("ab1", "^%a+$", False),
        ("hello world", "^%l+%s%l+$", True),
        ("Hello", "^%u%l+$", True),
        ("a_b", "^%w+$", False),
        ("deadBEEF", "^%x+$", True),
        ("a!", "%p$", True),
        ("ab", "^%S+$", True),
        ("a.b", "^a%.b$", True),
        ("axb", "^a%.b$", False),
        ("x-y", "^[%w-]+$", True),
        ("x_y", "^[%w-]+$", False),
        ("m", "^[a-f]$", False),
        ("c", "^[a-f]$", True),
        ("1", "^[^%d]$", False),
        ("]", "^[]]$", True),
        ("<a><b>", "^<.->$", True),
        ("<a><b>", "^<[^>]->$", False),
        ("color", "^colou?r$", True),
        ("colour", "^colou?r$", True),
        ("a$b", "a$b", True),
        ("ba", "a$", True),
        ("ab", "a$", False),
        ("x^y", "x^y", True),
        ("a*", "^(a)*$", True),
        ("aa", "^(a)%1$", True),
        ("", "^$", True),
        ("é", "^..$", True),
        ("é", "^.$", False),
    ],
)
def test_lua_patterns(subject: str, pattern: str, expected: bool) -> None:
    """Lua string.match semantics as used by init.lua validators (bytes, C-locale classes)."""
    assert lua_match(subject, pattern) is expected


@pytest.mark.parametrize("pattern", ["%b()", "%f[%w]"])
def test_unsupported_lua_pattern_items_raise(pattern: str) -> None:
    """Balanced and frontier items are not translated; failing loudly beats a wrong answer."""
    with pytest.raises(UnsupportedLuaPattern):
        lua_match("(x)", pattern)


@pytest.mark.parametrize("pattern", ["abc%", "[abc", "(a", "%1(a)", "a)"])
def test_malformed_lua_patterns_raise(pattern: str) -> None:
    """lstrlib.c: malformed pattern / invalid capture errors."""
    with pytest.raises(LuaPatternError):
        lua_match("abc", pattern)


# ------------------------------------------------------------------------------------------
# Helpers around the config
# ------------------------------------------------------------------------------------------


def test_config_fields_of() -> None:
    """plugin_servers: Schema.fields[1].config.fields, in declaration order."""
    names = [name for name, _ in config_fields_of(DEMO)]
    assert names == ["mode", "header_name", "greeting", "exit_status", "unguarded"]
    assert config_fields_of({"name": "bare", "fields": []}) == []


def test_select_config_drops_nulls_like_the_runloop() -> None:
    """dao/init.lua row_to_entity: process_auto_fields(row, "select") without nulls.

    plugins_iterator.lua reads plugins with each(page_size, GLOBAL_QUERY_OPTS), which has no
    'nulls', so the config sent to the plugin server has no key for an unset field.
    """
    processed = process_config(NESTED, {"rules": [{"path": "/a"}]})
    assert select_config(NESTED, processed) == {
        "limits": {"minute": 60, "window": {"size": 10}},
        "rules": [{"path": "/a", "weight": 1}],
    }
    assert "exit_status" not in select_config(DEMO, process_config(DEMO, {}))


# ------------------------------------------------------------------------------------------
# Robustness: whatever a plugin server dumps, the loader fails with Kong's errors only
# ------------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(),
    st.sampled_from(
        ["", "x", "%d", "string", "record", "array", "map", "integer", "foreign", "json"]
    ),
)
_KEYS = st.sampled_from(
    [
        "type",
        "fields",
        "elements",
        "keys",
        "values",
        "default",
        "required",
        "one_of",
        "between",
        "len_min",
        "match",
        "config",
        "a",
        "name",
        "eq",
        "entity_checks",
        "at_least_one_of",
        "conditional",
        "json_schema",
    ]
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fields=st.lists(st.dictionaries(_KEYS, _JSON, min_size=1, max_size=1), max_size=3), config=_JSON
)
def test_arbitrary_input_only_raises_schema_violations(fields: list[Any], config: Any) -> None:
    """plugin_loader.lua + init.lua: bad input is reported as a violation, never a crash."""
    schema = plugin_schema(*fields)
    try:
        validate_plugin_schema(schema)
    except SchemaError:
        return
    with contextlib.suppress(ConfigError, LuaPatternError):
        select_config(schema, process_config(schema, config))
