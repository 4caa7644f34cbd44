"""Kong's messages, verbatim: ``validation_errors`` in ``kong/db/schema/init.lua`` and
``meta_errors`` in ``kong/db/schema/metaschema.lua``."""

from __future__ import annotations

from typing import Final

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
SUBSCHEMA_INIT_PREFIX: Final = "error initializing schema for plugin: "
