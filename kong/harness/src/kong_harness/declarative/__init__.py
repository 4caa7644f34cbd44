"""Load a declarative ``kong.yml`` the way Kong's db-less loader does.

Sources (Kong repository): ``kong/db/declarative/init.lua`` (parse, error printing),
``kong/db/schema/others/declarative_config.lua`` (nesting, ids, references, uniqueness),
``kong/db/schema/entities/{services,routes,routes_subschemas,plugins,certificates,
ca_certificates}.lua`` and ``kong/db/schema/typedefs.lua`` (fields, defaults, validation and
their messages),
``kong/runloop/plugins_iterator.lua`` (which plugin configuration applies to a request).

What is reproduced
------------------
* ``_format_version: "3.0"``; services with the ``url`` shorthand (LuaSocket ``url.parse``
  semantics: it overrides ``protocol``/``host``/``port``/``path``, default ports 80/443, a
  missing path becomes null); Kong's defaults for every field.
* routes and plugins nested under their parent or at the top level referencing it by name
  or id (``service: name`` or ``service: {id: ...}``); a nested entity may not name its
  parent again ("value must be null").
* field validation with Kong's messages (route paths: must start with ``/`` or ``~/``, no
  ``//``, valid percent-encoding, plain paths already normalised, regexes that compile;
  methods upper-case; hosts with at most one wildcard at an end; header names; protocol
  sets; ...) and the route entity check "must set one of 'methods', 'hosts', 'headers',
  'paths'[, 'snis'] when 'protocols' is 'http[s]'".
* ids: the file's id, else Kong's own deterministic ids (``declarative_config.lua``
  ``generate_ids``): ``uuid5(uuid5(fd02801f-…, "<entity>"), <name>)`` for named services and
  routes, ``uuid5(uuid5(fd02801f-…, "plugins"), "plugins:*:<name>:<route>:<service>:<consumer>")``
  for plugins. Where Kong would use a *random* id (an unnamed service or route) the harness
  uses ``uuid5(…, "harness-position:<path in the file>")`` so restarts keep the same ids.
* uniqueness of names and ids per entity type, references that must resolve, each reported
  like Kong ("uniqueness violation: ...", "invalid reference 'service: x' (no such entry in
  'services')").
* upstream TLS (applied by ``kong_harness.upstream_tls``): top-level ``certificates`` (``cert``
  and ``key`` PEM, env-vault references allowed as ``referenceable`` fields, "certificate does
  not match key") and ``ca_certificates`` (one CA certificate each, not expired, with the CA
  basic constraint); a service's ``client_certificate`` is a foreign key to ``certificates``
  by id (``client_certificate: <id>`` or ``{id: <id>}``), checked like any reference, while
  ``ca_certificates`` is a plain array of UUIDs that Kong never checks at load (a missing one
  only fails at request time, ``kong/runloop/certificate.lua``). ``client_certificate``,
  ``tls_verify``, ``tls_verify_depth`` and ``ca_certificates`` must be null unless the
  protocol is https or tls (``services.lua`` entity checks).

Errors raise :class:`DeclarativeConfigError`; its message is Kong's admin-API wording
(``declarative config is invalid: {routes={{paths={"should start with: ..."}}}}``),
``fields`` holds the same tree, and :meth:`DeclarativeConfigError.pretty` prints it the way
``kong start`` does.

Left out on purpose (rejected with a clear message when present, never silently ignored):
consumers and credentials, upstreams/targets, SNIs (and certificates' ``snis``, alternative
``cert_alt``/``key_alt`` and nested ``services``), vaults, keys, filter chains, stream and gRPC
protocols, route ``snis``/``sources``/``destinations``, format
versions older than 3.0 (they need Kong's path migration). Plugin ``config`` is kept raw;
validating it against the plugin's schema is :mod:`kong_harness.schema`'s job. The entities
themselves are :mod:`kong_harness.entities`.
"""

from kong_harness.declarative.config import DeclarativeConfig
from kong_harness.declarative.errors import DeclarativeConfigError
from kong_harness.declarative.loader import load_declarative

__all__ = ["DeclarativeConfig", "DeclarativeConfigError", "load_declarative"]
