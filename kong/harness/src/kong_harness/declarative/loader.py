"""The loader: Kong's db-less parse of a declarative config (``kong/db/declarative/init.lua``,
``kong/db/schema/others/declarative_config.lua``): nesting, fields and defaults, ids,
references, uniqueness."""

from __future__ import annotations

import copy
import functools
import json
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from kong_harness.declarative.config import DeclarativeConfig
from kong_harness.declarative.errors import DeclarativeConfigError, ErrorCollector
from kong_harness.declarative.service_url import expand_service_url
from kong_harness.declarative.validators import (
    HEADER_NAME_RE,
    Validator,
    ca_certificate_problem,
    certificate_matches_key,
    regex_problem,
    v_array,
    v_boolean,
    v_certificate,
    v_host,
    v_integer,
    v_key,
    v_method,
    v_one_of,
    v_protocols,
    v_route_host,
    v_router_path,
    v_service_path,
    v_string,
    v_tag,
    v_utf8_name,
    v_uuid,
)
from kong_harness.entities import (
    DEFAULT_PLUGIN_PROTOCOLS,
    HARNESS_PROTOCOLS,
    PROTOCOLS,
    CACertificate,
    Certificate,
    PluginEntity,
    Route,
    Service,
)
from kong_harness.vault import is_reference, resolve_reference

SUPPORTED_FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
_ENTITIES_NAMESPACE = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")

# Entities Kong knows (constants.CORE_ENTITIES and bundled plugin daos) that the harness
# cannot honour: an empty or null list is fine, anything else is rejected.
_UNSUPPORTED_ENTITIES = (
    "workspaces",
    "consumers",
    "snis",
    "upstreams",
    "targets",
    "clustering_data_planes",
    "parameters",
    "vaults",
    "key_sets",
    "keys",
    "filter_chains",
    "consumer_groups",
    "keyauth_credentials",
    "basicauth_credentials",
    "hmacauth_credentials",
    "jwt_secrets",
    "acls",
    "oauth2_credentials",
    "oauth2_authorization_codes",
    "oauth2_tokens",
    "mtls_auth_credentials",
)


class _Field(NamedTuple):
    """A field checked by :func:`_apply`: its validator, and its default when absent."""

    key: str
    validator: Validator
    default: Any = None
    required: bool = False


_META_FIELDS = ("_comment", "_ignore")
_TIMEOUTS = ("connect_timeout", "write_timeout", "read_timeout")
_SERVICE_FIELDS = frozenset(
    (
        "id",
        "created_at",
        "updated_at",
        "name",
        "retries",
        "protocol",
        "host",
        "port",
        "path",
        "connect_timeout",
        "write_timeout",
        "read_timeout",
        "tags",
        "client_certificate",
        "tls_verify",
        "tls_verify_depth",
        "ca_certificates",
        "enabled",
        "url",
        "routes",
        "plugins",
        "filter_chains",
        *_META_FIELDS,
    )
)
_ROUTE_FIELDS = frozenset(
    (
        "id",
        "created_at",
        "updated_at",
        "name",
        "protocols",
        "https_redirect_status_code",
        "strip_path",
        "preserve_host",
        "request_buffering",
        "response_buffering",
        "tags",
        "service",
        "snis",
        "sources",
        "destinations",
        "methods",
        "hosts",
        "paths",
        "headers",
        "regex_priority",
        "path_handling",
        "plugins",
        "filter_chains",
        *_META_FIELDS,
    )
)
_CERTIFICATE_FIELDS = frozenset(
    (
        "id",
        "created_at",
        "updated_at",
        "cert",
        "key",
        "cert_alt",
        "key_alt",
        "tags",
        "snis",
        "services",
        "upstreams",
        *_META_FIELDS,
    )
)
_CA_CERTIFICATE_FIELDS = frozenset(
    (
        "id",
        "created_at",
        "updated_at",
        "cert",
        "cert_digest",
        "tags",
        *_META_FIELDS,
    )
)
# Each entity's plain fields, in the order Kong's schema (kong/db/schema/entities/*.lua) lists
# them; the fields with more to them are checked by hand.
_SERVICE_CHECKS = (
    _Field("name", v_utf8_name),
    _Field("retries", v_integer(0, 32767), 5),
    _Field("protocol", v_one_of(PROTOCOLS), "http"),
    _Field("host", v_host, required=True),
    _Field("port", v_integer(0, 65535), 80),
    _Field("path", v_service_path),
    *(_Field(t, v_integer(1, 2**31 - 2), 60000) for t in _TIMEOUTS),
    _Field("enabled", v_boolean, True),
    _Field("tls_verify", v_boolean),
    _Field("tls_verify_depth", v_integer(0, 64)),
    _Field("ca_certificates", v_array(v_uuid)),
)
_ROUTE_CHECKS = (
    _Field("name", v_utf8_name),
    _Field("protocols", v_protocols, ["http", "https"]),
    _Field("https_redirect_status_code", v_one_of((426, 301, 302, 307, 308)), 426),
    _Field("strip_path", v_boolean, True),
    _Field("preserve_host", v_boolean, False),
    _Field("request_buffering", v_boolean, True),
    _Field("response_buffering", v_boolean, True),
    _Field("methods", v_array(v_method, kind="set"), []),
    _Field("hosts", v_array(v_route_host), []),
    _Field("paths", v_array(v_router_path), []),
    _Field("regex_priority", v_integer(), 0),
    _Field("path_handling", v_one_of(("v0", "v1")), "v0"),
)
# services.lua entity_checks (``conditional``): fields that must be null unless the protocol
# is https or tls.
_TLS_SERVICE_FIELDS = ("client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates")
# Foreign keys checked by declarative_config.lua ``validate_references``: field -> entity.
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "routes": (("service", "services"),),
    "plugins": (("consumer", "consumers"), ("route", "routes"), ("service", "services")),
    "services": (("client_certificate", "certificates"),),
}
_PLUGIN_FIELDS = frozenset(
    (
        "id",
        "name",
        "instance_name",
        "created_at",
        "updated_at",
        "route",
        "service",
        "consumer",
        "config",
        "protocols",
        "enabled",
        "tags",
        *_META_FIELDS,
    )
)


@dataclass
class _Item:
    kind: str  # "services" | "routes" | "plugins" | "certificates" | "ca_certificates"
    data: dict[str, Any]
    path: tuple[Any, ...]  # where errors go in the tree
    label: str  # position in the file, for position-based ids
    parent: _Item | None = None
    id: str | None = None


def _read_source(source: str | os.PathLike[str] | Mapping[str, Any]) -> Any:
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    text: str
    if isinstance(source, os.PathLike):
        text = Path(source).read_text(encoding="utf-8")
    elif "\n" not in source and os.path.isfile(source):
        text = Path(source).read_text(encoding="utf-8")
    else:
        text = source
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeclarativeConfigError(f"failed parsing declarative configuration: {exc}") from exc
    if not isinstance(data, dict):
        raise DeclarativeConfigError("failed parsing declarative configuration: expected an object")
    return data


def _entries(value: Any, errs: ErrorCollector, path: tuple[Any, ...], key: str) -> list[Any]:
    """An entity array: null/absent is empty; else must be a list of records."""
    if value is None:
        return []
    if not isinstance(value, list):
        errs.set(path, key, "expected an array")
        return []
    return value


def _check_fields(
    record: dict[str, Any], allowed: frozenset[str], errs: ErrorCollector, path: tuple[Any, ...]
) -> None:
    for key in record:
        if key not in allowed:
            errs.set(path, key, "unknown field")


def _apply(
    record: dict[str, Any],
    out: dict[str, Any],
    errs: ErrorCollector,
    path: tuple[Any, ...],
    key: str,
    validator: Validator,
    default: Any = None,
    *,
    required: bool = False,
) -> None:
    value = record.get(key)
    if value is None:
        if required and default is None:
            errs.set(path, key, "required field missing")
        out[key] = copy.deepcopy(default)
        return
    err = validator(value)
    if err:
        errs.set(path, key, err)
    out[key] = value


def _apply_fields(
    record: dict[str, Any],
    out: dict[str, Any],
    errs: ErrorCollector,
    path: tuple[Any, ...],
    fields: Sequence[_Field],
) -> None:
    for f in fields:
        _apply(record, out, errs, path, f.key, f.validator, f.default, required=f.required)


def _unsupported(errs: ErrorCollector, path: tuple[Any, ...], key: str, what: str) -> None:
    errs.set(path, key, f"not supported by the kong harness: {what}")


def _validate_common(
    record: dict[str, Any], out: dict[str, Any], errs: ErrorCollector, path: tuple[Any, ...]
) -> None:
    _apply(record, out, errs, path, "id", v_uuid)
    _apply(record, out, errs, path, "created_at", v_integer())
    _apply(record, out, errs, path, "updated_at", v_integer())
    _apply(record, out, errs, path, "tags", v_array(v_tag, kind="set"), [])
    for key in ("filter_chains",):
        if record.get(key):
            _unsupported(errs, path, key, "filter chains (Wasm)")


def _foreign(
    record: dict[str, Any],
    out: dict[str, Any],
    errs: ErrorCollector,
    path: tuple[Any, ...],
    key: str,
    nested_under: str | None,
) -> None:
    value = record.get(key)
    if nested_under is not None:
        if value is not None:
            errs.set(path, key, "value must be null")
        out[key] = None
        return
    if value is None:
        out[key] = None
    elif isinstance(value, str) or (
        isinstance(value, dict) and isinstance(value.get("id"), str) and set(value) <= {"id"}
    ):
        out[key] = value
    elif isinstance(value, dict):
        errs.set(path, key, {"id": "missing primary key"})
    else:
        errs.set(path, key, "expected a string")


class _Loader:
    def __init__(self, enabled_plugins: Collection[str] | None) -> None:
        self.errs = ErrorCollector()
        self.items: list[_Item] = []
        self.failed: set[int] = set()
        self.enabled_plugins = None if enabled_plugins is None else frozenset(enabled_plugins)

    # -- phase 1: shape and fields ----------------------------------------------------------

    def load(self, data: dict[str, Any]) -> DeclarativeConfig:
        errs = self.errs
        parsers: dict[str, Callable[[Any, tuple[Any, ...], str], None]] = {
            "certificates": self._certificate,
            "ca_certificates": self._ca_certificate,
            "services": self._service,
            "routes": self._route,
            "plugins": self._plugin,
        }
        version = data.get("_format_version")
        if version is None:
            errs.set((), "_format_version", "required field missing")
        elif not isinstance(version, str):
            errs.set((), "_format_version", "expected a string")
        elif version not in SUPPORTED_FORMAT_VERSIONS:
            errs.set(
                (), "_format_version", "expected one of: " + ", ".join(SUPPORTED_FORMAT_VERSIONS)
            )
        elif version != "3.0":
            _unsupported(
                errs,
                (),
                "_format_version",
                f"format {version} (convert it to 3.0: regex paths need a '~')",
            )
        if data.get("_transform") is not None and not isinstance(data["_transform"], bool):
            errs.set((), "_transform", "expected a boolean")
        for key, value in data.items():
            if key in ("_format_version", "_transform", *_META_FIELDS) or key in parsers:
                continue
            if key in _UNSUPPORTED_ENTITIES:
                if value not in (None, []):
                    _unsupported(errs, (), key, f"'{key}' entities")
                continue
            errs.set((), key, "unknown field")

        for kind, parse in parsers.items():  # parents before the entities referring to them
            for i, rec in enumerate(_entries(data.get(kind), errs, (), kind), 1):
                parse(rec, (kind, i), f"{kind}[{i}]")
        errs.raise_if_any()

        self._assign_ids()
        self._check_uniqueness()
        resolved = self._resolve_references()
        errs.raise_if_any()
        return self._build(resolved, str(version))

    def _open(
        self, rec: Any, path: tuple[Any, ...], allowed: frozenset[str]
    ) -> tuple[dict[str, Any], dict[str, Any], int] | None:
        """An entity parser's start: its record (unknown fields reported), its output with the
        fields every entity has, and how many errors stood before those; ``None`` if ``rec``
        is no record."""
        if not isinstance(rec, dict):
            self.errs.set(path[:-1], path[-1], "expected a record")
            return None
        _check_fields(rec, allowed, self.errs, path)
        out: dict[str, Any] = {}
        errors_before = _count_leaves(self.errs.tree)
        _validate_common(rec, out, self.errs, path)
        return rec, out, errors_before

    def _children(
        self,
        record: dict[str, Any],
        path: tuple[Any, ...],
        label: str,
        parent: _Item,
        key: str,
        parse: Callable[[Any, tuple[Any, ...], str, _Item], None],
    ) -> None:
        """The entities nested in ``parent`` under ``key`` (a service's routes, plugins)."""
        for j, child in enumerate(_entries(record.get(key), self.errs, path, key), 1):
            parse(child, (*path, key, j), f"{label}.{key}[{j}]", parent)

    def _service(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        opened = self._open(rec, path, _SERVICE_FIELDS)
        if opened is None:
            return
        errs = self.errs
        record, out, _ = opened
        record = dict(record)
        url = record.pop("url", None)
        if url is not None:
            if isinstance(url, str):
                record.update(expand_service_url(url))
            else:
                errs.set(path, "url", "expected a string")
        _apply_fields(record, out, errs, path, _SERVICE_CHECKS)
        _foreign(record, out, errs, path, "client_certificate", None)
        protocol = out.get("protocol")
        # services.lua entity_checks, all ``conditional`` (schema/init.lua): the field gets
        # "value must be null" and @entity the check's own message, once per failed check.
        conditional = "failed conditional validation given value of field 'protocol'"
        null_fields = []
        if protocol in ("tcp", "tls", "udp", "grpc", "grpcs"):
            null_fields.append("path")
        if isinstance(protocol, str) and protocol not in ("https", "tls"):
            null_fields += _TLS_SERVICE_FIELDS
        for key in null_fields:
            if record.get(key) is not None:
                errs.set(path, key, "value must be null")
                errs.append(path, "@entity", conditional)
        if protocol in PROTOCOLS and protocol not in HARNESS_PROTOCOLS:
            _unsupported(errs, path, "protocol", f"'{protocol}' services")
        item = _Item("services", out, path, label)
        self.items.append(item)
        self._children(record, path, label, item, "routes", self._route)
        self._children(record, path, label, item, "plugins", self._plugin)

    def _certificate(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        """certificates.lua: ``cert``/``key`` required, valid and matching."""
        opened = self._open(rec, path, _CERTIFICATE_FIELDS)
        if opened is None:
            return
        errs = self.errs
        record, out, _ = opened
        check_cert = v_certificate(referenceable=True)
        _apply(record, out, errs, path, "cert", check_cert, required=True)
        _apply(record, out, errs, path, "key", v_key, required=True)
        for name in ("cert_alt", "key_alt"):
            if record.get(name) is not None:
                _unsupported(
                    errs,
                    path,
                    name,
                    "alternative certificates (served to clients, never to upstreams)",
                )
        for name in ("snis", "services", "upstreams"):
            if record.get(name) not in (None, []):
                _unsupported(
                    errs,
                    path,
                    name,
                    f"'{name}' in a certificate (reference the certificate by id instead)",
                )
        cert, key = out.get("cert"), out.get("key")
        # custom_entity_check: skipped when a field failed or holds a vault reference
        if (
            isinstance(cert, str)
            and isinstance(key, str)
            and not is_reference(cert)
            and not is_reference(key)
            and check_cert(cert) is None
            and v_key(key) is None
            and not certificate_matches_key(cert, key)
        ):
            errs.append(path, "@entity", "certificate does not match key")
        self.items.append(_Item("certificates", out, path, label))

    def _ca_certificate(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        """ca_certificates.lua: ``cert`` required (not referenceable), one CA certificate."""
        opened = self._open(rec, path, _CA_CERTIFICATE_FIELDS)
        if opened is None:
            return
        errs = self.errs
        record, out, _ = opened
        check_cert = v_certificate(referenceable=False)
        _apply(record, out, errs, path, "cert", check_cert, required=True)
        _apply(record, out, errs, path, "cert_digest", v_string)
        cert = out.get("cert")
        if isinstance(cert, str) and check_cert(cert) is None:
            problem = ca_certificate_problem(cert)
            if problem is not None:
                errs.append(path, "@entity", problem)
        self.items.append(_Item("ca_certificates", out, path, label))

    def _route(
        self, rec: Any, path: tuple[Any, ...], label: str, parent: _Item | None = None
    ) -> None:
        opened = self._open(rec, path, _ROUTE_FIELDS)
        if opened is None:
            return
        errs = self.errs
        record, out, errors_before = opened
        _apply_fields(record, out, errs, path, _ROUTE_CHECKS)
        self._route_headers(record, out, path)
        _foreign(record, out, errs, path, "service", None if parent is None else "services")
        protocols = out.get("protocols") or []
        http_only = all(p in ("http", "https") for p in protocols)
        for key in ("sources", "destinations"):
            if record.get(key) not in (None, []):
                if http_only:
                    errs.set(path, key, f"cannot set '{key}' when 'protocols' is 'http' or 'https'")
                else:
                    _unsupported(errs, path, key, f"route '{key}'")
        if record.get("snis") not in (None, []):
            if not any(p in ("grpcs", "https", "tls", "tls_passthrough") for p in protocols):
                errs.append(
                    path,
                    "@entity",
                    "'snis' can only be set when 'protocols' is "
                    "'grpcs', 'https', 'tls' or 'tls_passthrough'",
                )
            else:
                _unsupported(errs, path, "snis", "route 'snis' (no TLS in the harness)")
        if isinstance(protocols, list) and protocols and not v_protocols(protocols):
            unsupported = [p for p in protocols if p not in HARNESS_PROTOCOLS]
            if unsupported:
                _unsupported(errs, path, "protocols", f"{', '.join(unsupported)} routes")
        if _count_leaves(errs.tree) == errors_before:
            self._route_entity_checks(out, path)
        item = _Item("routes", out, path, label, parent)
        self.items.append(item)
        self._children(record, path, label, item, "plugins", self._plugin)

    def _route_headers(
        self, record: dict[str, Any], out: dict[str, Any], path: tuple[Any, ...]
    ) -> None:
        errs = self.errs
        headers = record.get("headers")
        out["headers"] = {}
        if headers is None:
            return
        if not isinstance(headers, dict):
            errs.set(path, "headers", "expected a map")
            return
        result: dict[str, tuple[str, ...]] = {}
        for name, values in headers.items():
            if not isinstance(name, str) or not name:
                errs.set(path, "headers", "no header name provided")
                continue
            if not HEADER_NAME_RE.fullmatch(name):
                errs.set(
                    path,
                    "headers",
                    f"bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                )
                continue
            if name.lower() == "host":
                errs.set(
                    path,
                    "headers",
                    "cannot contain 'host' header, which must be "
                    "specified in the 'hosts' attribute",
                )
                continue
            err = v_array(v_string)(values)
            if err:
                errs.set((*path, "headers"), name, err)
                continue
            result[name] = tuple(values)
        out["headers"] = result

    def _route_entity_checks(self, out: dict[str, Any], path: tuple[Any, ...]) -> None:
        """routes_subschemas.lua ``conditional_at_least_one_of`` and, for
        traditional_compatible, routes.lua ``validate_route`` (the ATC expression compiles)."""
        protocols = out["protocols"]
        fields = ["methods", "hosts", "headers", "paths"]
        if "https" in protocols:
            fields.append("snis")
            when = "https"
        elif "http" in protocols:
            when = "http"
        else:
            return
        if not any(out.get(f) for f in fields):
            listed = ", ".join(f"'{f}'" for f in fields)
            self.errs.append(
                path, "@entity", f"must set one of {listed} when 'protocols' is '{when}'"
            )
            return
        # traditional_compatible: the generated ATC expression must compile in Rust
        checks = [(p[1:], True) for p in out["paths"] if p.startswith("~")]
        for values in out["headers"].values():
            checks += [(v[2:].lower(), False) for v in values if v.startswith("~*")]
        for rx, is_path in checks:
            problem = regex_problem(rx, anchored=is_path)
            if problem is None:
                continue
            kind, message = problem
            if kind == "rust":
                self.errs.append(
                    path,
                    "@entity",
                    f"Router Expression failed validation: regex parse error: '{rx}': {message}",
                )
            elif not is_path:  # path regexes were reported on the field already
                self.errs.append(path, "@entity", f"invalid header regex '{rx}' ({message})")

    def _plugin(
        self, rec: Any, path: tuple[Any, ...], label: str, parent: _Item | None = None
    ) -> None:
        opened = self._open(rec, path, _PLUGIN_FIELDS)
        if opened is None:
            return
        errs = self.errs
        record, out, _ = opened
        _apply(record, out, errs, path, "name", v_string, required=True)
        name = out.get("name")
        if (
            isinstance(name, str)
            and self.enabled_plugins is not None
            and name not in self.enabled_plugins
        ):
            errs.set(
                path,
                "name",
                f"plugin '{name}' not enabled; add it to the 'plugins' configuration property",
            )
        _apply(record, out, errs, path, "instance_name", v_utf8_name)
        _apply(record, out, errs, path, "enabled", v_boolean, True)
        _apply(
            record,
            out,
            errs,
            path,
            "protocols",
            v_array(v_one_of(PROTOCOLS), kind="set"),
            list(DEFAULT_PLUGIN_PROTOCOLS),
        )
        config = record.get("config")
        if config is None:
            out["config"] = {}
        elif not isinstance(config, dict):
            errs.set(path, "config", "expected a record")
        else:
            out["config"] = copy.deepcopy(config)
        nested_under = parent.kind if parent is not None else None
        for key in ("route", "service", "consumer"):
            _foreign(record, out, errs, path, key, nested_under)
        self.items.append(_Item("plugins", out, path, label, parent))

    # -- phase 2: ids, uniqueness, references ------------------------------------------------

    def _assign_ids(self) -> None:
        """declarative_config.lua ``generate_ids`` (+ position-based ids where Kong is random)."""
        for item in self.items:  # parents always precede their children
            given = item.data.get("id")
            if given:
                item.id = given
                continue
            key: str | None
            if item.kind in ("services", "routes"):
                key = item.data.get("name")
            elif item.kind == "plugins":
                key = self._plugin_cache_key(item)
            else:  # certificates, ca_certificates: no endpoint or cache key, a random id
                key = None
            item.id = _entity_uuid(
                item.kind, key if key is not None else f"harness-position:{item.label}"
            )

    @staticmethod
    def _plugin_cache_key(item: _Item) -> str:
        """``build_cache_key`` for plugins: ``plugins:*:<name>:<route>:<service>:<consumer>``."""
        parts = ["plugins", "*"]
        child_key = None
        if item.parent is not None:
            child_key = "route" if item.parent.kind == "routes" else "service"
        for k in ("name", "route", "service", "consumer"):
            v = item.data.get(k)
            if isinstance(v, str):
                parts.append(v)
            elif v is None:
                if k == child_key and item.parent is not None:
                    parts.append(str(item.parent.id))
                else:
                    parts.append("")
        return ":".join(parts)

    def _check_uniqueness(self) -> None:
        """``populate_references``: endpoint keys (name / instance_name) then primary keys."""
        names: dict[tuple[str, str], _Item] = {}
        ids: dict[tuple[str, str], _Item] = {}
        for item in self.items:
            endpoint = "instance_name" if item.kind == "plugins" else "name"
            key = item.data.get(endpoint)
            failed = False
            if key is not None:
                if (item.kind, key) in names:
                    self._item_error(
                        item,
                        f"uniqueness violation: '{item.kind}' entity with "
                        f"{endpoint} set to '{key}' already declared",
                    )
                    failed = True
                else:
                    names[(item.kind, key)] = item
            ident = (item.kind, str(item.id).lower())
            if not failed and ident in ids:
                self._item_error(
                    item,
                    f"uniqueness violation: '{item.kind}' entity with "
                    f"primary key set to '{item.id}' already declared",
                )
            else:
                ids.setdefault(ident, item)
        self.names = names
        self.ids = ids

    def _item_error(self, item: _Item, message: str) -> None:
        self.failed.add(id(item))
        self.errs.set(item.path[:-1], item.path[-1], message)

    def _find(self, kind: str, key: str) -> _Item | None:
        return self.names.get((kind, key)) or self.ids.get((kind, key.lower()))

    def _resolve_references(self) -> dict[int, dict[str, _Item | None]]:
        resolved: dict[int, dict[str, _Item | None]] = {}
        for item in self.items:
            refs: dict[str, _Item | None] = {}
            if item.kind == "routes":
                refs["service"] = item.parent
            elif item.kind == "plugins" and item.parent is not None:
                refs[item.parent.kind[:-1]] = item.parent
            missing: list[str] = []
            for fname, target_kind in _REFERENCES.get(item.kind, ()):
                value = item.data.get(fname)
                if value is None:
                    refs.setdefault(fname, None)
                    continue
                key = value if isinstance(value, str) else value["id"]
                found = self._find(target_kind, key) if target_kind != "consumers" else None
                if found is None:
                    shown = (
                        value
                        if isinstance(value, str)
                        else json.dumps(value, separators=(",", ":"))
                    )
                    missing.append(
                        f"invalid reference '{fname}: {shown}' (no such entry in '{target_kind}')"
                    )
                refs[fname] = found
            if missing:
                endpoint = "instance_name" if item.kind == "plugins" else "name"
                at = item.data.get(endpoint) or item.id
                for message in sorted(missing):
                    self.errs.append((item.kind,), at, message)
            resolved[id(item)] = refs
        self._check_plugin_combos(resolved)
        return resolved

    def _check_plugin_combos(self, resolved: dict[int, dict[str, _Item | None]]) -> None:
        """Two plugins of one name on the same route/service: Kong keeps one of them
        arbitrarily (import.lua indexes plugins by cache key), so the harness refuses."""
        seen: dict[tuple[str, str | None, str | None], _Item] = {}
        for item in self.items:
            if item.kind != "plugins" or id(item) in self.failed:
                continue
            refs = resolved[id(item)]
            route, service = refs.get("route"), refs.get("service")
            combo = (
                item.data["name"],
                route.id if route else None,
                service.id if service else None,
            )
            if combo in seen:
                self._item_error(
                    item,
                    f"uniqueness violation: 'plugins' entity with name set "
                    f"to '{combo[0]}' already declared for the same route, "
                    "service and consumer",
                )
            else:
                seen[combo] = item

    # -- phase 3: typed entities -------------------------------------------------------------

    def _of_kind(self, kind: str) -> Iterator[_Item]:
        return (item for item in self.items if item.kind == kind)

    def _build(
        self, resolved: dict[int, dict[str, _Item | None]], version: str
    ) -> DeclarativeConfig:
        certificates: dict[int, Certificate] = {}
        ca_certificates: list[CACertificate] = []
        services: dict[int, Service] = {}
        routes: dict[int, Route] = {}
        plugins: list[PluginEntity] = []
        for item in self.items:
            d = item.data
            if item.kind == "certificates":
                # referenceable cert/key: env-vault references resolved as the config is read
                cert, key = (
                    resolve_reference(v) if is_reference(v) else v for v in (d["cert"], d["key"])
                )
                certificates[id(item)] = Certificate(
                    id=str(item.id), cert=cert, key=key, tags=_dedupe(d["tags"])
                )
            elif item.kind == "ca_certificates":
                ca_certificates.append(
                    CACertificate(id=str(item.id), cert=d["cert"], tags=_dedupe(d["tags"]))
                )
        for item in self._of_kind("services"):
            d = item.data
            cert_item = resolved[id(item)].get("client_certificate")
            services[id(item)] = Service(
                id=str(item.id),
                host=d["host"],
                name=d.get("name"),
                protocol=d["protocol"],
                port=int(d["port"]),
                path=d.get("path"),
                retries=int(d["retries"]),
                connect_timeout=int(d["connect_timeout"]),
                read_timeout=int(d["read_timeout"]),
                write_timeout=int(d["write_timeout"]),
                enabled=d["enabled"],
                tags=_dedupe(d["tags"]),
                client_certificate=(certificates[id(cert_item)] if cert_item is not None else None),
                tls_verify=d.get("tls_verify"),
                tls_verify_depth=(
                    int(d["tls_verify_depth"]) if d.get("tls_verify_depth") is not None else None
                ),
                ca_certificates=(
                    tuple(d["ca_certificates"]) if d.get("ca_certificates") is not None else None
                ),
            )
        for item in self._of_kind("routes"):
            d = item.data
            svc_item = resolved[id(item)].get("service")
            routes[id(item)] = Route(
                id=str(item.id),
                name=d.get("name"),
                service=services[id(svc_item)] if svc_item is not None else None,
                protocols=_dedupe(d["protocols"]),
                methods=_dedupe(d["methods"]),
                hosts=tuple(d["hosts"]),
                paths=tuple(d["paths"]),
                headers=d["headers"],
                strip_path=d["strip_path"],
                preserve_host=d["preserve_host"],
                regex_priority=int(d["regex_priority"]),
                path_handling=d["path_handling"],
                https_redirect_status_code=int(d["https_redirect_status_code"]),
                request_buffering=d["request_buffering"],
                response_buffering=d["response_buffering"],
                tags=_dedupe(d["tags"]),
            )
        for item in self._of_kind("plugins"):
            d = item.data
            refs = resolved[id(item)]
            r_item, s_item = refs.get("route"), refs.get("service")
            plugins.append(
                PluginEntity(
                    id=str(item.id),
                    name=d["name"],
                    config=d["config"],
                    enabled=d["enabled"],
                    route=routes[id(r_item)] if r_item is not None else None,
                    service=services[id(s_item)] if s_item is not None else None,
                    protocols=_dedupe(d["protocols"]),
                    instance_name=d.get("instance_name"),
                    tags=_dedupe(d["tags"]),
                )
            )
        return DeclarativeConfig(
            format_version=version,
            services=tuple(services.values()),
            routes=tuple(routes.values()),
            plugins=tuple(plugins),
            certificates=tuple(certificates.values()),
            ca_certificates=tuple(ca_certificates),
        )


def _count_leaves(tree: Any) -> int:
    if isinstance(tree, dict):
        return sum(_count_leaves(v) for v in tree.values())
    if isinstance(tree, list):
        return len(tree)
    return 1


def _dedupe(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


@functools.cache
def _entity_namespace(kind: str) -> uuid.UUID:
    return uuid.uuid5(_ENTITIES_NAMESPACE, kind)


def _entity_uuid(kind: str, key: str) -> str:
    """``declarative_config.lua`` ``generate_uuid(schema.name, key)``."""
    return str(uuid.uuid5(_entity_namespace(kind), key))


def load_declarative(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    enabled_plugins: Collection[str] | None = None,
) -> DeclarativeConfig:
    """Load a declarative configuration from a file path, YAML/JSON text or a mapping.

    ``enabled_plugins`` (Kong's ``plugins`` setting, e.g. ``bundled`` names plus ours), when
    given, makes unknown plugin names fail like Kong ("plugin 'x' not enabled; ...").
    Raises :class:`DeclarativeConfigError` on anything Kong would refuse.
    """
    data = _read_source(source)
    return _Loader(enabled_plugins).load(data)
