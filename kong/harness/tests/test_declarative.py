"""``kong_harness.declarative``: loading a declarative ``kong.yml`` like Kong's db-less mode.

Sources in Kong's repository (each test names the one its rule comes from):
``kong/db/schema/entities/services.lua``, ``routes.lua``, ``routes_subschemas.lua``,
``plugins.lua``, ``kong/db/schema/typedefs.lua``, ``kong/db/schema/init.lua``
(``validation_errors``), ``kong/db/schema/others/declarative_config.lua``,
``kong/db/declarative/init.lua``, ``kong/db/errors.lua``, ``kong/runloop/plugins_iterator.lua``,
``kong/runloop/handler.lua`` and the spec ``spec/01-unit/01-db/01-schema/11-declarative_config/
03-flatten_spec.lua``.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from kong_harness.declarative import (
    DeclarativeConfig,
    DeclarativeConfigError,
    load_declarative,
)
from kong_harness.router import Router

ENTITIES_NS = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")


def kong_id(entity: str, key: str) -> str:
    """Kong's deterministic id (declarative_config.lua ``generate_uuid``)."""
    return str(uuid.uuid5(uuid.uuid5(ENTITIES_NS, entity), key))


def load(text: str, **kw: Any) -> DeclarativeConfig:
    return load_declarative(textwrap.dedent(text), **kw)


def error_of(config: dict[str, Any] | str) -> DeclarativeConfigError:
    with pytest.raises(DeclarativeConfigError) as info:
        if isinstance(config, str):
            load(config)
        else:
            load_declarative({"_format_version": "3.0", **config})
    return info.value


# ------------------------------------------------------------------------------------------
# Services: url shorthand and defaults
# ------------------------------------------------------------------------------------------


def test_url_shorthand_expands_like_kong() -> None:
    """``url`` expands into protocol/host/port/path (services.lua shorthand + LuaSocket
    ``url.parse``; flatten_spec "allows url shorthand")."""
    cfg = load("""
        _format_version: "3.0"
        services:
        - name: foo
          url: https://example.com:8000/hello/world
        - name: plain
          url: http://backend
        - name: secure
          url: https://secure.example.com/api/
        - name: by-port
          url: //tls.example.com:443
    """)
    foo = cfg.service("foo")
    assert (foo.protocol, foo.host, foo.port, foo.path) == (
        "https",
        "example.com",
        8000,
        "/hello/world",
    )
    plain = cfg.service("plain")
    assert (plain.protocol, plain.host, plain.port, plain.path) == ("http", "backend", 80, None)
    secure = cfg.service("secure")
    assert (secure.protocol, secure.port, secure.path) == ("https", 443, "/api/")
    by_port = cfg.service("by-port")  # no scheme: port 443 means https
    assert (by_port.protocol, by_port.port) == ("https", 443)


def test_service_defaults() -> None:
    """Kong's defaults (services.lua): protocol http, port 80, retries 5, timeouts
    60000 ms, enabled true, no path."""
    svc = load("""
        _format_version: "3.0"
        services:
        - name: s
          host: backend
    """).service("s")
    assert (svc.protocol, svc.port, svc.path, svc.retries, svc.enabled) == (
        "http",
        80,
        None,
        5,
        True,
    )
    assert (svc.connect_timeout, svc.read_timeout, svc.write_timeout) == (60000, 60000, 60000)


def test_url_overrides_explicit_fields() -> None:
    """A shorthand's values take precedence over the fields it expands into, even a missing
    path (kong/db/schema/init.lua ``process_auto_fields``: ``data[k] = v``)."""
    svc = load("""
        _format_version: "3.0"
        services:
        - name: s
          url: http://backend:8080
          path: /ignored
          port: 9999
    """).service("s")
    assert (svc.port, svc.path) == (8080, None)


def test_route_defaults() -> None:
    """routes.lua defaults: protocols http+https, strip_path true, preserve_host false,
    regex_priority 0, path_handling v0, https_redirect_status_code 426, buffering on."""
    r = load("""
        _format_version: "3.0"
        routes:
        - name: r
          paths: [/a]
    """).route("r")
    assert r.protocols == ("http", "https")
    assert (r.strip_path, r.preserve_host, r.regex_priority, r.path_handling) == (
        True,
        False,
        0,
        "v0",
    )
    assert (r.https_redirect_status_code, r.request_buffering, r.response_buffering) == (
        426,
        True,
        True,
    )
    assert r.service is None and r.methods == () and r.hosts == () and r.headers == {}


# ------------------------------------------------------------------------------------------
# Nesting, references, ids
# ------------------------------------------------------------------------------------------

NESTED = """
    _format_version: "3.0"
    services:
    - name: auth
      url: http://backend:8080
      routes:
      - name: login
        paths: [/auth/login]
        plugins:
        - name: edge-rate-limit
          config: {limit: 5}
      plugins:
      - name: edge-trace
    - name: other
      id: 0f3a2b4c-1111-4222-8333-444455556666
      host: other.internal
    routes:
    - name: by-name
      service: auth
      paths: [/by-name]
    - name: by-id
      service: 0f3a2b4c-1111-4222-8333-444455556666
      paths: [/by-id]
    - name: by-record
      service: {id: 0f3a2b4c-1111-4222-8333-444455556666}
      paths: [/by-record]
    - name: serviceless
      hosts: [example.com]
    plugins:
    - name: edge-jwt
      config: {optional: true}
    - name: edge-jwt
      route: by-name
      config: {optional: false}
    - name: edge-trace
      service: other
    - name: edge-rate-limit
      route: login
      service: auth
      config: {limit: 1}
"""


def test_nested_and_top_level_routes() -> None:
    """Routes nested under a service belong to it; top-level routes reference a service by
    name, id or ``{id: ...}`` (declarative_config.lua ``nest_foreign_relationships`` /
    ``reference_foreign_by_name`` / ``find_entity``)."""
    cfg = load(NESTED)
    auth, other = cfg.service("auth"), cfg.service("other")
    assert cfg.route("login").service == auth
    assert cfg.route("by-name").service == auth
    assert cfg.route("by-id").service == other
    assert cfg.route("by-record").service == other
    assert cfg.route("serviceless").service is None
    assert len(cfg.routes) == 5


def test_nested_and_top_level_plugins() -> None:
    """Plugins nested under a route get only that route (not its service), under a service
    that service; top-level ones reference route/service by name (declarative_config.lua
    ``populate_references``: ``item[child_key] = parent_fk``)."""
    cfg = load(NESTED)
    by = {
        (p.name, p.route.name if p.route else None, p.service.name if p.service else None): p
        for p in cfg.plugins
    }
    assert set(by) == {
        ("edge-rate-limit", "login", None),
        ("edge-trace", None, "auth"),
        ("edge-jwt", None, None),
        ("edge-jwt", "by-name", None),
        ("edge-trace", None, "other"),
        ("edge-rate-limit", "login", "auth"),
    }
    assert by[("edge-jwt", None, None)].config == {"optional": True}
    assert by[("edge-jwt", None, None)].is_global
    assert by[("edge-trace", None, "auth")].config == {}
    assert by[("edge-trace", None, "auth")].protocols == ("grpc", "grpcs", "http", "https")


def test_ids_are_kongs_deterministic_ids() -> None:
    """Named services/routes get ``uuid5(uuid5(fd02801f-…, entity), name)``, plugins
    ``uuid5(uuid5(…, "plugins"), "plugins:*:<name>:<route>:<service>:<consumer>")`` with the
    parent id for a nested plugin (declarative_config.lua ``generate_ids`` /
    ``build_cache_key``); ids from the file are kept; unnamed entities get a position-based
    id instead of Kong's random one, so two loads agree."""
    cfg = load(NESTED)
    auth = cfg.service("auth")
    assert auth.id == kong_id("services", "auth")
    assert cfg.service("other").id == "0f3a2b4c-1111-4222-8333-444455556666"
    login = cfg.route("login")
    assert login.id == kong_id("routes", "login")
    ids = {
        (p.name, p.route.name if p.route else None, p.service.name if p.service else None): p.id
        for p in cfg.plugins
    }
    assert ids[("edge-jwt", None, None)] == kong_id("plugins", "plugins:*:edge-jwt:::")
    assert ids[("edge-jwt", "by-name", None)] == kong_id("plugins", "plugins:*:edge-jwt:by-name::")
    assert ids[("edge-rate-limit", "login", None)] == kong_id(
        "plugins", f"plugins:*:edge-rate-limit:{login.id}::"
    )
    assert ids[("edge-trace", None, "auth")] == kong_id(
        "plugins", f"plugins:*:edge-trace::{auth.id}:"
    )
    unnamed = "_format_version: '3.0'\nservices:\n- host: a\n  routes:\n  - paths: [/x]\n"
    first, second = load_declarative(unnamed), load_declarative(unnamed)
    assert first.routes[0].id == second.routes[0].id
    assert first.services[0].id == second.services[0].id
    assert uuid.UUID(first.routes[0].id).version == 5


def test_loads_from_path_and_json(tmp_path: Path) -> None:
    """A file path, YAML text or JSON text (kong/db/declarative/init.lua ``unserialize``)."""
    text = textwrap.dedent(NESTED)
    path = tmp_path / "kong.yml"
    path.write_text(text)
    from_path = load_declarative(path)
    from_str_path = load_declarative(str(path))
    from_json = load_declarative(
        json.dumps({"_format_version": "3.0", "services": [{"name": "j", "host": "h"}]})
    )
    assert from_path == from_str_path == load(NESTED)
    assert from_json.service("j").host == "h"


# ------------------------------------------------------------------------------------------
# Validation errors
# ------------------------------------------------------------------------------------------


def test_bad_path_is_rejected_with_kongs_message() -> None:
    """typedefs.lua ``router_path``: "should start with: / (fixed path) or ~/ (regex path)";
    the admin-API message renders the error tree with penlight (kong/db/errors.lua
    ``declarative_config``) and ``pretty()`` like ``kong start`` (declarative/init.lua
    ``pretty_print_error``)."""
    err = error_of({"routes": [{"name": "r", "paths": ["foo"]}]})
    assert err.fields == {
        "routes": {1: {"paths": {1: "should start with: / (fixed path) or ~/ (regex path)"}}}
    }
    assert str(err) == (
        'declarative config is invalid: {routes={{paths={"should start with: '
        '/ (fixed path) or ~/ (regex path)"}}}}'
    )
    assert err.pretty() == textwrap.dedent("""\
        in 'routes':
          - in entry 1 of 'routes':
            in 'paths':
              - in entry 1 of 'paths': should start with: / (fixed path) or ~/ (regex path)""")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/a//b", "must not have empty segments"),
        ("/foo%zz", "invalid url-encoded value: '%zz'"),
        ("/foo/../bar", "non-normalized path, consider use '/bar' instead"),
        ("/fo%6F", "non-normalized path, consider use '/foo' instead"),
        ("/a%2fb", "non-normalized path, consider use '/a%2Fb' instead"),
    ],
)
def test_plain_path_rules(path: str, message: str) -> None:
    """typedefs.lua ``router_path`` match_none ``//`` and ``validate_path_with_regexes``
    (percent-encoding, plain paths must already be in normalised form)."""
    err = error_of({"routes": [{"paths": ["/ok", path]}]})
    assert err.fields == {"routes": {1: {"paths": {2: message}}}}


def test_regex_paths_are_compiled() -> None:
    """A regex path must compile (typedefs.lua dry-runs it); constructs atc-router's Rust
    regex lacks fail the traditional_compatible expression check (routes.lua
    ``validate_route``: "Router Expression failed validation")."""
    cfg = load_declarative(
        {"_format_version": "3.0", "routes": [{"name": "ok", "paths": [r"~/users/(?<id>\d+)$"]}]}
    )
    assert cfg.route("ok").paths == (r"~/users/(?<id>\d+)$",)
    broken = error_of({"routes": [{"paths": ["~/foo("]}]})
    assert broken.fields["routes"][1]["paths"][1].startswith("invalid regex: '/foo(' (")
    lookahead = error_of({"routes": [{"paths": ["~/foo(?=bar)"]}]})
    (message,) = lookahead.fields["routes"][1]["@entity"]
    assert message.startswith("Router Expression failed validation: regex parse error")
    unicode_class = error_of({"routes": [{"paths": [r"~/\p{L}+"]}]})
    assert "not supported by the harness" in unicode_class.fields["routes"][1]["paths"][1]


def test_route_needs_a_matching_field() -> None:
    """routes_subschemas.lua ``conditional_at_least_one_of`` with Kong's wording; the default
    protocols contain https, so 'snis' is listed."""
    err = error_of({"routes": [{"name": "r"}, {"name": "h", "protocols": ["http"]}]})
    assert err.fields["routes"][1] == {
        "@entity": [
            "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' "
            "is 'https'"
        ]
    }
    assert err.fields["routes"][2] == {
        "@entity": [
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
        ]
    }


def test_unknown_service_reference_is_rejected() -> None:
    """declarative_config.lua ``validate_references``: the error is keyed by the route's
    name and says "invalid reference 'service: x' (no such entry in 'services')"."""
    err = error_of(
        {
            "routes": [{"name": "r1", "paths": ["/a"], "service": "missing"}],
            "plugins": [{"name": "edge-jwt", "route": "nope"}],
        }
    )
    assert err.fields["routes"] == {
        "r1": ["invalid reference 'service: missing' (no such entry in 'services')"]
    }
    plugin_id = kong_id("plugins", "plugins:*:edge-jwt:nope::")
    assert err.fields["plugins"] == {
        plugin_id: ["invalid reference 'route: nope' (no such entry in 'routes')"]
    }


def test_duplicate_names_and_ids_are_rejected() -> None:
    """declarative_config.lua ``populate_references``/``uniqueness_error_msg``: per entity
    type, names (endpoint key) then primary keys must be unique."""
    err = error_of({"services": [{"name": "a", "host": "x"}, {"name": "a", "host": "y"}]})
    assert err.fields == {
        "services": {
            2: "uniqueness violation: 'services' entity with name set to 'a' already declared"
        }
    }
    rid = "0f3a2b4c-1111-4222-8333-444455556666"
    err = error_of({"routes": [{"id": rid, "paths": ["/a"]}, {"id": rid, "paths": ["/b"]}]})
    assert err.fields == {
        "routes": {
            2: "uniqueness violation: 'routes' entity with primary "
            f"key set to '{rid}' already declared"
        }
    }
    nested = error_of(
        {
            "services": [{"name": "s", "host": "x", "routes": [{"name": "r", "paths": ["/a"]}]}],
            "routes": [{"name": "r", "paths": ["/b"]}],
        }
    )
    assert nested.fields == {
        "routes": {1: "uniqueness violation: 'routes' entity with name set to 'r' already declared"}
    }


def test_same_plugin_twice_on_one_route_is_rejected() -> None:
    """Identical cache keys produce identical generated ids (declarative_config.lua
    ``build_cache_key``), which Kong rejects as a primary-key uniqueness violation."""
    err = error_of(
        {
            "routes": [
                {
                    "name": "r",
                    "paths": ["/a"],
                    "plugins": [{"name": "edge-jwt"}, {"name": "edge-jwt"}],
                }
            ]
        }
    )
    message = err.fields["routes"][1]["plugins"][2]
    assert message.startswith("uniqueness violation: 'plugins' entity with primary key")


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"name": "s"}, "host", "required field missing"),
        ({"host": "h", "port": 70000}, "port", "value should be between 0 and 65535"),
        ({"host": "h", "port": "80"}, "port", "expected an integer"),
        ({"host": "h:80"}, "host", "must not have a port"),
        (
            {"host": "h", "protocol": "ftp"},
            "protocol",
            "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp",
        ),
        ({"host": "h", "path": "api"}, "path", "should start with: /"),
        ({"host": "h", "retries": -1}, "retries", "value should be between 0 and 32767"),
        (
            {"host": "h", "connect_timeout": 0},
            "connect_timeout",
            "value should be between 1 and 2147483646",
        ),
        (
            {"host": "h", "name": "bad name"},
            "name",
            "invalid value 'bad name': the only accepted ascii characters are alphanumerics or ., "
            "-, _, and ~",
        ),
        ({"host": "h", "colour": "red"}, "colour", "unknown field"),
    ],
)
def test_service_field_validation(record: dict[str, Any], field: str, message: str) -> None:
    """services.lua / typedefs.lua field rules with schema/init.lua ``validation_errors``."""
    err = error_of({"services": [record]})
    assert err.fields["services"][1][field] == message


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"methods": ["get"]}, "methods", {1: "invalid value: get"}),
        ({"hosts": ["*.a.*"]}, "hosts", {1: "invalid wildcard: must have at most one wildcard"}),
        (
            {"hosts": ["a.*.com"]},
            "hosts",
            {1: "invalid wildcard: must be placed at leftmost or rightmost label"},
        ),
        (
            {"headers": {"Host": ["x"]}},
            "headers",
            "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
        ),
        (
            {"headers": {"x y": ["v"]}},
            "headers",
            "bad header name 'x y', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
        ),
        ({"paths": ["/a"], "path_handling": "v2"}, "path_handling", "expected one of: v0, v1"),
        (
            {"paths": ["/a"], "https_redirect_status_code": 303},
            "https_redirect_status_code",
            "expected one of: 426, 301, 302, 307, 308",
        ),
        ({"paths": ["/a"], "strip_path": "yes"}, "strip_path", "expected a boolean"),
        (
            {"paths": ["/a"], "protocols": ["http", "tcp"]},
            "protocols",
            "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp'), "
            "('tls_passthrough'), ('grpc', 'grpcs')",
        ),
        ({"paths": ["/a"], "id": "not-a-uuid"}, "id", "expected a valid UUID"),
    ],
)
def test_route_field_validation(record: dict[str, Any], field: str, message: Any) -> None:
    """routes.lua / typedefs.lua (``http_method``, ``hosts``, ``headers``, ``protocols``)."""
    err = error_of({"routes": [record]})
    assert err.fields["routes"][1][field] == message


def test_nested_entities_cannot_name_their_parent() -> None:
    """Nested records have their foreign keys forced to null (declarative_config.lua
    ``copy_record``: ``fdata.eq = null``)."""
    err = error_of(
        {
            "services": [
                {
                    "name": "s",
                    "host": "h",
                    "routes": [
                        {
                            "paths": ["/a"],
                            "service": "s",
                            "plugins": [{"name": "edge-jwt", "route": "x"}],
                        }
                    ],
                }
            ]
        }
    )
    route_errs = err.fields["services"][1]["routes"][1]
    assert route_errs["service"] == "value must be null"
    assert route_errs["plugins"][1]["route"] == "value must be null"


def test_format_version_and_top_level_keys() -> None:
    """declarative_config.lua ``build_fields``: ``_format_version`` is required and one of
    1.1/2.1/3.0; unknown keys are unknown fields. The harness supports 3.0 only and refuses
    entities it cannot honour instead of ignoring them."""
    assert error_of("services: []\n").fields == {"_format_version": "required field missing"}
    assert error_of("_format_version: 3.0\n").fields == {"_format_version": "expected a string"}
    assert error_of('_format_version: "4.0"\n').fields == {
        "_format_version": "expected one of: 1.1, 2.1, 3.0"
    }
    assert (
        "not supported by the kong harness"
        in error_of('_format_version: "2.1"\n').fields["_format_version"]
    )
    assert error_of({"servces": []}).fields == {"servces": "unknown field"}
    consumers = error_of({"consumers": [{"username": "alice"}]})
    assert "not supported by the kong harness" in consumers.fields["consumers"]
    load_declarative(
        {
            "_format_version": "3.0",
            "consumers": [],
            "upstreams": None,
            "_comment": "fine",
            "_transform": True,
        }
    )


def test_enabled_plugins_gate_plugin_names() -> None:
    """With Kong's ``plugins`` setting known, an unknown plugin fails like Kong
    (plugins.lua ``subschema_error``)."""
    assert load_declarative({"_format_version": "3.0", "plugins": [{"name": "edge-jvt"}]})
    with pytest.raises(DeclarativeConfigError) as info:
        load_declarative(
            {"_format_version": "3.0", "plugins": [{"name": "edge-jvt"}]},
            enabled_plugins={"edge-jwt", "edge-trace"},
        )
    assert info.value.fields == {
        "plugins": {
            1: {
                "name": (
                    "plugin 'edge-jvt' not enabled; add it to the 'plugins' configuration property"
                )
            }
        }
    }


# ------------------------------------------------------------------------------------------
# Plugin precedence (plugins_iterator.lua)
# ------------------------------------------------------------------------------------------


def plugin_map(cfg: DeclarativeConfig, route: str | None, service: str | None) -> dict[str, Any]:
    r = cfg.route(route) if route else None
    s = cfg.service(service) if service else None
    return {p.name: p.config for p in cfg.plugins_for(r, s)}


def test_plugin_precedence() -> None:
    """plugins_iterator.lua ``lookup_cfg`` without consumers: route+service > route >
    service > global, one configuration per plugin name."""
    cfg = load(NESTED)
    # login (service auth): route+service edge-rate-limit beats the route-only one;
    # edge-trace from the service; edge-jwt global
    assert plugin_map(cfg, "login", "auth") == {
        "edge-rate-limit": {"limit": 1},
        "edge-trace": {},
        "edge-jwt": {"optional": True},
    }
    # by-name (service auth): its own edge-jwt, service edge-trace, no rate limit
    assert plugin_map(cfg, "by-name", "auth") == {"edge-jwt": {"optional": False}, "edge-trace": {}}
    # by-id (service other): other's edge-trace, global edge-jwt
    assert {
        p.service.name if p.service else None
        for p in cfg.plugins_for(cfg.route("by-id"), cfg.service("other"))
        if p.name == "edge-trace"
    } == {"other"}
    # no route matched (404): globals only
    assert plugin_map(cfg, None, None) == {"edge-jwt": {"optional": True}}
    assert [p.name for p in cfg.global_plugins()] == ["edge-jwt"]


def test_route_and_service_plugin_needs_both() -> None:
    """A plugin scoped to route+service applies only when both match (plugins_iterator.lua
    ``build_compound_key(route_id, service_id, nil)``)."""
    cfg = load(NESTED)
    login, auth = cfg.route("login"), cfg.service("auth")
    limits = [p for p in cfg.plugins_for(login, None) if p.name == "edge-rate-limit"]
    assert [p.config for p in limits] == [{"limit": 5}]  # route-only config
    both = [p for p in cfg.plugins_for(login, auth) if p.name == "edge-rate-limit"]
    assert [p.config for p in both] == [{"limit": 1}]


def test_disabled_route_plugin_lets_the_global_one_apply() -> None:
    """``enabled: false`` removes a plugin from the candidates altogether
    (plugins_iterator.lua ``should_process_plugin`` skips it, so ``lookup_cfg`` falls through
    to the service or global configuration): a disabled route plugin does NOT switch the
    plugin off for that route in Kong; the lower-precedence configuration comes back."""
    cfg = load("""
        _format_version: "3.0"
        services:
        - name: s
          host: backend
          plugins:
          - name: edge-rate-limit
            enabled: false
          routes:
          - name: public
            paths: [/public]
            plugins:
            - name: edge-jwt
              enabled: false
        plugins:
        - name: edge-jwt
          config: {optional: false}
    """)
    applied = cfg.plugins_for(cfg.route("public"), cfg.service("s"))
    assert [(p.name, p.is_global) for p in applied] == [("edge-jwt", True)]
    assert all(p.enabled for p in applied)


def test_plugins_without_an_http_protocol_do_not_run() -> None:
    """plugins_iterator.lua ``should_process_plugin``: a plugin needs a protocol of the http
    subsystem; a disabled global plugin is not returned either."""
    cfg = load("""
        _format_version: "3.0"
        plugins:
        - name: tcp-only
          protocols: [tcp]
        - name: disabled-one
          enabled: false
        - name: https-only
          protocols: [https]
    """)
    assert [p.name for p in cfg.global_plugins()] == ["https-only"]


# ------------------------------------------------------------------------------------------
# Declarative config + router
# ------------------------------------------------------------------------------------------


def test_loaded_routes_drive_the_router() -> None:
    """End to end: routes of a disabled service are not routed (handler.lua ``new_router``),
    nested routes proxy to their service with the service path joined (utils.lua
    ``get_upstream_uri_v0``)."""
    cfg = load("""
        _format_version: "3.0"
        services:
        - name: api
          url: http://backend:8080/internal
          routes:
          - name: users
            paths: [/api/users]
        - name: retired
          url: http://old:8080
          enabled: false
          routes:
          - name: old
            paths: [/api]
    """)
    router = Router(cfg.routes)
    m = router.match("GET", "localhost:8000", "/api/users/42")
    assert m is not None and m.route == cfg.route("users")
    assert (m.upstream_uri, m.upstream_host) == ("/internal/42", "backend:8080")
    assert router.match("GET", "localhost:8000", "/api/other") is None
