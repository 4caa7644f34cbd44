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

This package reproduces that, with one validation engine (:mod:`.engine`) used both ways, as
Kong does:

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

from kong_harness.schema.config import config_fields_of, process_config, select_config
from kong_harness.schema.errors import ConfigError, KongSchemaViolation, SchemaError
from kong_harness.schema.lua import LuaPatternError, UnsupportedLuaPattern, lua_match
from kong_harness.schema.metaschema import validate_plugin_schema

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
