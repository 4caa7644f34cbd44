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
validating it against the plugin's schema is another module's job.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kong_harness.router import (
    RegexTranslationError,
    normalize_uri,
    translate_path_regex,
)
from kong_harness.vault import is_reference, resolve_reference

__all__ = [
    "CACertificate",
    "Certificate",
    "DeclarativeConfig",
    "DeclarativeConfigError",
    "PluginEntity",
    "Route",
    "Service",
    "load_declarative",
]

# constants.lua PROTOCOLS (sorted, as Kong lists them in "expected one of")
PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp")
HTTP_SUBSYSTEM_PROTOCOLS = frozenset(("grpc", "grpcs", "http", "https"))
HARNESS_PROTOCOLS = frozenset(("http", "https"))
DEFAULT_PLUGIN_PROTOCOLS = ("grpc", "grpcs", "http", "https")  # typedefs.protocols default
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

_META_FIELDS = ("_comment", "_ignore")
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


# --------------------------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A Kong Certificate (``kong/db/schema/entities/certificates.lua``): ``cert`` (PEM, the
    leaf first, then its chain) and ``key`` (PEM), env-vault references resolved."""

    id: str
    cert: str = field(repr=False)
    key: str = field(repr=False)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CACertificate:
    """A Kong CA Certificate (``kong/db/schema/entities/ca_certificates.lua``): one PEM CA."""

    id: str
    cert: str = field(repr=False)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """A Kong Service (``kong/db/schema/entities/services.lua``) with Kong's defaults.

    The TLS fields are Kong's: ``tls_verify`` ``None`` means nginx's ``proxy_ssl_verify``
    decides, ``ca_certificates`` holds ids of :class:`CACertificate` entities (unchecked, as
    in Kong), ``client_certificate`` the referenced :class:`Certificate`.
    """

    id: str
    host: str
    name: str | None = None
    protocol: str = "http"
    port: int = 80
    path: str | None = None
    retries: int = 5
    connect_timeout: int = 60000
    read_timeout: int = 60000
    write_timeout: int = 60000
    enabled: bool = True
    tags: tuple[str, ...] = ()
    client_certificate: Certificate | None = None
    tls_verify: bool | None = None
    tls_verify_depth: int | None = None
    ca_certificates: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Route:
    """A Kong Route (``kong/db/schema/entities/routes.lua``) with Kong's defaults.

    Unset list fields are empty tuples; ``headers`` maps a header name to its values.
    """

    id: str
    name: str | None = None
    service: Service | None = None
    protocols: tuple[str, ...] = ("http", "https")
    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    strip_path: bool = True
    preserve_host: bool = False
    regex_priority: int = 0
    path_handling: str = "v0"
    https_redirect_status_code: int = 426
    request_buffering: bool = True
    response_buffering: bool = True
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginEntity:
    """A Kong Plugin entity (``kong/db/schema/entities/plugins.lua``); ``config`` is raw."""

    id: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    enabled: bool = True
    route: Route | None = None
    service: Service | None = None
    consumer: None = None
    protocols: tuple[str, ...] = DEFAULT_PLUGIN_PROTOCOLS
    instance_name: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def is_global(self) -> bool:
        """No route, service or consumer: Kong's "global" plugin."""
        return self.route is None and self.service is None and self.consumer is None


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

ErrorTree = dict[Any, Any]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _lua_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _lua_repr(value: Any) -> str:
    """Render like penlight's ``pretty.write(t, "")`` (Kong's admin-API error message)."""
    if isinstance(value, list):
        value = {i: v for i, v in enumerate(value, start=1)}
    if isinstance(value, dict):
        parts: list[str] = []
        n = 1
        while n in value:
            parts.append(_lua_repr(value[n]))
            n += 1
        rest_int = sorted(k for k in value if isinstance(k, int) and not 1 <= k < n)
        rest_str = sorted(k for k in value if not isinstance(k, int))
        for k in rest_int:
            parts.append(f"[{k}]={_lua_repr(value[k])}")
        for k in rest_str:
            key = k if _IDENT.fullmatch(k) else f"[{_lua_quote(k)}]"
            parts.append(f"{key}={_lua_repr(value[k])}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, str):
        return _lua_quote(value)
    return str(value)


def _pretty_lines(tree: Any, item: str, indent: str) -> list[str]:
    """``kong/db/declarative/init.lua`` ``pretty_print_error``."""
    if isinstance(tree, list):
        tree = {i: v for i, v in enumerate(tree, start=1)}
    lines: list[str] = []
    keys = sorted(k for k in tree if isinstance(k, int)) + sorted(
        (k for k in tree if not isinstance(k, int)), key=str
    )
    for k in keys:
        v = tree[k]
        key = f"- in entry {k} of '{item}'" if isinstance(k, int) else f"in '{k}'"
        if isinstance(v, dict | list):
            lines.append(f"{indent}{key}:")
            lines.extend(_pretty_lines(v, str(k), indent + "  "))
        else:
            lines.append(f"{indent}{key}: {v}")
    return lines


class DeclarativeConfigError(Exception):
    """The declarative configuration is invalid (or uses what the harness cannot do).

    ``message`` is Kong's admin-API message, ``fields`` the error tree (entity -> 1-based
    index or name -> field -> message), :meth:`pretty` the ``kong start`` rendering.
    """

    def __init__(self, message: str, fields: ErrorTree | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: ErrorTree = fields or {}

    @classmethod
    def from_tree(cls, tree: ErrorTree) -> DeclarativeConfigError:
        return cls(f"declarative config is invalid: {_lua_repr(tree)}", tree)

    def pretty(self) -> str:
        """Multi-line rendering (``pretty_print_error`` in ``kong/db/declarative/init.lua``)."""
        if not self.fields:
            return self.message
        return "\n".join(_pretty_lines(self.fields, "", ""))


class _Errors:
    def __init__(self) -> None:
        self.tree: ErrorTree = {}

    def _node(self, path: Sequence[Any]) -> dict[Any, Any]:
        node = self.tree
        for key in path:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        return node

    def set(self, path: Sequence[Any], key: Any, message: Any) -> None:
        self._node(path)[key] = message

    def append(self, path: Sequence[Any], key: Any, message: str) -> None:
        node = self._node(path)
        existing = node.get(key)
        if isinstance(existing, list):
            existing.append(message)
        else:
            node[key] = [message]

    def raise_if_any(self) -> None:
        if self.tree:
            raise DeclarativeConfigError.from_tree(self.tree)


# --------------------------------------------------------------------------------------------
# Field validators (typedefs.lua / schema/init.lua messages)
# --------------------------------------------------------------------------------------------

Validator = Callable[[Any], "str | dict[int, str] | None"]

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_UTF8_NAME_RE = re.compile(r"[A-Za-z0-9.\-_~\u0080-\U0010ffff]+")
_TAG_RE = re.compile(r"[ !-+\-.0-~\u0080-\U0010ffff]+")
_HEADER_NAME_RE = re.compile(r"[a-zA-Z0-9\-_]+")
_METHOD_RE = re.compile(r"[A-Z]+")
_PATH_CHARS_RE = re.compile(r"/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*")


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


def _v_string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _v_boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected a boolean"


def _v_integer(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "expected an integer"
        if lo is not None and hi is not None and not lo <= int(v) <= hi:
            return f"value should be between {lo} and {hi}"
        return None

    return check


def _v_one_of(options: Sequence[Any]) -> Validator:
    def check(v: Any) -> str | None:
        if v not in options:
            return "expected one of: " + ", ".join(str(o) for o in options)
        return None

    return check


def _v_uuid(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a string"
    return None if _UUID_RE.fullmatch(v) else "expected a valid UUID"


def _v_utf8_name(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a string"
    if not _UTF8_NAME_RE.fullmatch(v):
        return (
            f"invalid value '{v}': the only accepted ascii characters are "
            "alphanumerics or ., -, _, and ~"
        )
    return None


def _v_tag(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a string"
    if not _TAG_RE.fullmatch(v):
        return (
            f"invalid tag '{v}': expected printable ascii (except `,` and `/`) "
            "or valid utf-8 sequences"
        )
    return None


def _v_array(elem: Validator, *, kind: str = "array") -> Validator:
    def check(v: Any) -> str | dict[int, Any] | None:
        if not isinstance(v, list):
            return f"expected {'a set' if kind == 'set' else 'an array'}"
        errs: dict[int, Any] = {}
        for i, item in enumerate(v, start=1):
            err = elem(item)
            if err:
                errs[i] = err
        return errs or None

    return check


def _check_hostname(address: str) -> tuple[bool, int | None, str | None]:
    """``kong/tools/ip.lua`` ``normalize_ip`` -> (ok, port, error)."""
    colons = address.count(":")
    if colons > 1:  # ipv6
        m = re.fullmatch(r"\[([^\]]+)\](.*)", address)
        addr, rest = (m.group(1), m.group(2)) if m else (address, "")
        port: int | None = None
        if rest:
            pm = re.fullmatch(r":(\d*)", rest)
            if not pm:
                return False, None, "invalid ipv6 address"
            port = int(pm.group(1)) if pm.group(1) else 0
            if port > 65535:
                return False, None, "invalid port number"
        import ipaddress

        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            return False, None, f"invalid ipv6 address: {address}"
        return True, port, None
    if re.fullmatch(r"[\d.]+", address.replace(":", "")):
        m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::(\d+))?", address)
        if not m or any(int(x) > 255 for x in m.groups()[:4]):
            return False, None, f"invalid ipv4 address: {address}"
        port = int(m.group(5)) if m.group(5) else None
        if port is not None and port > 65535:
            return False, None, "invalid port number"
        return True, port, None
    name = address
    port = None
    pm = re.search(r":(\d+)$", address)
    if pm:
        name = address[: pm.start()]
        port = int(pm.group(1))
        if port > 65535:
            return False, None, "invalid port number"
    if not re.fullmatch(r"[0-9A-Za-z\-._]+", name):
        return False, None, f"invalid hostname: {address}"
    segments = name.split(".")
    for index, seg in enumerate(segments, start=1):
        if seg.endswith("-") or (seg == "" and index != len(segments)):
            return False, None, f"invalid hostname: {address}"
    return True, port, None


def _v_host(v: Any) -> str | None:
    """``typedefs.host``: a name or IP without port."""
    if not isinstance(v, str):
        return "expected a string"
    ok, port, err = _check_hostname(v)
    if err == "invalid port number" or (ok and port is not None):
        return "must not have a port"
    if not ok:
        return f"invalid value: {v}"
    return None


def _v_route_host(v: Any) -> str | None:
    """``typedefs.hosts`` elements: wildcard rules, then host with optional port."""
    if not isinstance(v, str):
        return "expected a string"
    if v.count("*") > 1:
        return "invalid wildcard: must have at most one wildcard"
    if "*" in v and not (v.startswith("*.") or v.endswith(".*")):
        return "invalid wildcard: must be placed at leftmost or rightmost label"
    ok, _, err = _check_hostname(v.replace("*", "abc"))
    return None if ok else err


def _percent_error(path: str) -> str | None:
    raw = re.sub(r"%[0-9A-Fa-f]{2}", "___", path)
    pos = raw.find("%")
    if pos != -1:
        return f"invalid url-encoded value: '{raw[pos : pos + 3]}'"
    return None


def _v_service_path(v: Any) -> str | None:
    """``typedefs.path``."""
    if not isinstance(v, str):
        return "expected a string"
    if not v.startswith("/"):
        return "should start with: /"
    if "//" in v:
        return "must not have empty segments"
    if not _PATH_CHARS_RE.fullmatch(v):
        return f"invalid path: '{v}' (characters outside of the reserved list of RFC 3986 found)"
    return _percent_error(v)


def _latin1(s: str) -> str:
    return s.encode("utf-8").decode("latin-1")


def _v_router_path(v: Any) -> str | None:
    """``typedefs.router_path`` (``validate_path_with_regexes``)."""
    if not isinstance(v, str):
        return "expected a string"
    if not (v.startswith("/") or v.startswith("~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if "//" in v:
        return "must not have empty segments"
    err = _percent_error(v)
    if err:
        return err
    if not v.startswith("~"):
        normalized = normalize_uri(_latin1(v), merge_slashes=True)
        if normalized != _latin1(v):
            pretty = normalized.encode("latin-1").decode("utf-8", "replace")
            return f"non-normalized path, consider use '{pretty}' instead"
        return None
    problem = _regex_problem(v[1:], anchored=True)
    if problem is None or problem[0] == "rust":
        return None  # Rust-only rejections are reported by the route entity check, like Kong
    return f"invalid regex: '{v[1:]}' ({problem[1]})"


def _regex_problem(rx: str, *, anchored: bool) -> tuple[str, str] | None:
    """Why a route regex cannot be used: ("rust", msg) when atc-router's Rust regex rejects a
    construct, ("compile", msg) when it does not compile at all, ("harness", msg) when only
    the harness cannot translate it to Python ``re``."""
    try:
        translate_path_regex(rx, anchored=anchored)
    except RegexTranslationError as exc:
        if isinstance(exc.__cause__, re.error):
            return "compile", f"regex error: {exc}"
        if exc.rust_rejects:
            return "rust", str(exc)
        return "harness", f"not supported by the harness: {exc}"
    return None


def _v_method(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a string"
    return None if _METHOD_RE.fullmatch(v) else f"invalid value: {v}"


def _v_protocols(v: Any) -> str | dict[int, str] | None:
    err = _v_array(_v_one_of(PROTOCOLS), kind="set")(v)
    if err:
        return err
    if len(v) < 1:
        return "length must be at least 1"
    subsets = (("http", "https"), ("tcp", "tls", "udp"), ("tls_passthrough",), ("grpc", "grpcs"))
    touched = [s for s in subsets if any(p in s for p in v)]
    if len(touched) > 1:
        listed = ", ".join("(" + ", ".join(f"'{p}'" for p in s) + ")" for s in subsets)
        return f"these sets are mutually exclusive: {listed}"
    return None


def _v_certificate(*, referenceable: bool) -> Validator:
    """``typedefs.certificate``: resty.openssl ``x509.new`` must read it; a referenceable
    field holding a vault reference is not validated (schema/init.lua ``validate_field``)."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "expected a string"
        if referenceable and is_reference(v):
            return None
        if not v:
            return "length must be at least 1"
        try:
            x509.load_pem_x509_certificate(v.encode())
        except ValueError as exc:
            return f"invalid certificate: {exc}"
        return None

    return check


def _v_key(v: Any) -> str | None:
    """``typedefs.key`` (referenceable in certificates.lua): resty.openssl ``pkey.new``."""
    if not isinstance(v, str):
        return "expected a string"
    if is_reference(v):
        return None
    if not v:
        return "length must be at least 1"
    try:
        serialization.load_pem_private_key(v.encode(), password=None)
    except (ValueError, TypeError) as exc:
        return f"invalid key: {exc}"
    return None


def _public_key_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate_matches_key(cert: str, key: str) -> bool:
    """certificates.lua entity check: the certificate's public key is the key's."""
    certificate = x509.load_pem_x509_certificate(cert.encode())
    private = serialization.load_pem_private_key(key.encode(), password=None)
    return _public_key_der(certificate.public_key()) == _public_key_der(private.public_key())


def _ca_certificate_problem(cert: str) -> str | None:
    """ca_certificates.lua entity check, in its order: one certificate, not expired, a CA."""
    tag = "-----BEGIN CERTIFICATE-----"
    first = cert.find(tag)
    if first != -1 and cert.find(tag, first + len(tag) + 1) != -1:
        return "please submit only one certificate at a time"
    certificate = x509.load_pem_x509_certificate(cert.encode())
    if certificate.not_valid_after_utc < datetime.now(UTC):
        return 'certificate expired, "Not After" time is in the past'
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return (
            'certificate does not appear to be a CA because it is missing the "CA" basic constraint'
        )
    return None


# --------------------------------------------------------------------------------------------
# url shorthand (services.lua + LuaSocket url.parse)
# --------------------------------------------------------------------------------------------


def _socket_url_parse(url: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    rest = url
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9+\-.]*):", rest)
    if m:
        parsed["scheme"] = m.group(1)
        rest = rest[m.end() :]
    m = re.match(r"//([^/]*)", rest)
    if m:
        parsed["authority"] = m.group(1)
        rest = rest[m.end() :]
    for sep in ("#", "?", ";"):
        pos = rest.find(sep)
        if pos != -1:
            rest = rest[:pos]
    if rest:
        parsed["path"] = rest
    authority = parsed.get("authority")
    if authority is None:
        return parsed
    authority = re.sub(r"^[^@]*@", "", authority, count=1)
    pm = re.search(r":([^:\]]*)$", authority)
    if pm:
        parsed["port"] = pm.group(1)
        authority = authority[: pm.start()]
    if authority:
        bm = re.fullmatch(r"\[(.+)\]", authority)
        parsed["host"] = bm.group(1) if bm else authority
    return parsed


def _expand_url(url: str) -> dict[str, Any]:
    """``services.lua`` ``url`` shorthand."""
    parsed = _socket_url_parse(url)
    port_text = parsed.get("port")
    port: Any = int(port_text) if port_text and port_text.isdigit() else None
    prot = "http" if port == 80 else "https" if port == 443 else None
    protocol = parsed.get("scheme") or prot or "http"
    if port is None:
        if port_text is not None:
            port = port_text  # not a number: schema validation will complain
        else:
            port = 80 if protocol == "http" else 443 if protocol == "https" else 80
    return {
        "protocol": protocol,
        "host": parsed.get("host"),
        "port": port,
        "path": parsed.get("path"),
    }


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class _Item:
    kind: str  # "services" | "routes" | "plugins" | "certificates" | "ca_certificates"
    data: dict[str, Any]
    path: tuple[Any, ...]  # where errors go in the tree
    label: str  # position in the file, for position-based ids
    parent: _Item | None = None
    id: str | None = None
    generated_key: str | None = None


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


def _entries(value: Any, errs: _Errors, path: tuple[Any, ...], key: str) -> list[Any]:
    """An entity array: null/absent is empty; else must be a list of records."""
    if value is None:
        return []
    if not isinstance(value, list):
        errs.set(path, key, "expected an array")
        return []
    return value


def _check_fields(
    record: dict[str, Any], allowed: frozenset[str], errs: _Errors, path: tuple[Any, ...]
) -> None:
    for key in record:
        if key not in allowed:
            errs.set(path, key, "unknown field")


def _apply(
    record: dict[str, Any],
    out: dict[str, Any],
    errs: _Errors,
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


def _unsupported(errs: _Errors, path: tuple[Any, ...], key: str, what: str) -> None:
    errs.set(path, key, f"not supported by the kong harness: {what}")


def _validate_common(
    record: dict[str, Any], out: dict[str, Any], errs: _Errors, path: tuple[Any, ...]
) -> None:
    _apply(record, out, errs, path, "id", _v_uuid)
    _apply(record, out, errs, path, "created_at", _v_integer())
    _apply(record, out, errs, path, "updated_at", _v_integer())
    _apply(record, out, errs, path, "tags", _v_array(_v_tag, kind="set"), [])
    for key in ("filter_chains",):
        if record.get(key):
            _unsupported(errs, path, key, "filter chains (Wasm)")


def _foreign(
    record: dict[str, Any],
    out: dict[str, Any],
    errs: _Errors,
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
        self.errs = _Errors()
        self.items: list[_Item] = []
        self.failed: set[int] = set()
        self.enabled_plugins = None if enabled_plugins is None else frozenset(enabled_plugins)

    # -- phase 1: shape and fields ----------------------------------------------------------

    def load(self, data: dict[str, Any]) -> DeclarativeConfig:
        errs = self.errs
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
            if key in (
                "_format_version",
                "_transform",
                *_META_FIELDS,
                "certificates",
                "ca_certificates",
                "services",
                "routes",
                "plugins",
            ):
                continue
            if key in _UNSUPPORTED_ENTITIES:
                if value not in (None, []):
                    _unsupported(errs, (), key, f"'{key}' entities")
                continue
            errs.set((), key, "unknown field")

        for i, rec in enumerate(_entries(data.get("certificates"), errs, (), "certificates"), 1):
            self._certificate(rec, ("certificates", i), f"certificates[{i}]")
        for i, rec in enumerate(
            _entries(data.get("ca_certificates"), errs, (), "ca_certificates"), 1
        ):
            self._ca_certificate(rec, ("ca_certificates", i), f"ca_certificates[{i}]")
        for i, rec in enumerate(_entries(data.get("services"), errs, (), "services"), 1):
            self._service(rec, ("services", i), f"services[{i}]")
        for i, rec in enumerate(_entries(data.get("routes"), errs, (), "routes"), 1):
            self._route(rec, ("routes", i), f"routes[{i}]", None)
        for i, rec in enumerate(_entries(data.get("plugins"), errs, (), "plugins"), 1):
            self._plugin(rec, ("plugins", i), f"plugins[{i}]", None)
        errs.raise_if_any()

        self._assign_ids()
        self._check_uniqueness()
        resolved = self._resolve_references()
        errs.raise_if_any()
        return self._build(resolved, str(version))

    def _record(self, rec: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
        if not isinstance(rec, dict):
            self.errs.set(path[:-1], path[-1], "expected a record")
            return None
        return rec

    def _service(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        record = self._record(rec, path)
        if record is None:
            return
        errs = self.errs
        _check_fields(record, _SERVICE_FIELDS, errs, path)
        record = dict(record)
        url = record.pop("url", None)
        if url is not None:
            if isinstance(url, str):
                record.update(_expand_url(url))
            else:
                errs.set(path, "url", "expected a string")
        out: dict[str, Any] = {}
        _validate_common(record, out, errs, path)
        _apply(record, out, errs, path, "name", _v_utf8_name)
        _apply(record, out, errs, path, "retries", _v_integer(0, 32767), 5)
        _apply(record, out, errs, path, "protocol", _v_one_of(PROTOCOLS), "http")
        _apply(record, out, errs, path, "host", _v_host, required=True)
        _apply(record, out, errs, path, "port", _v_integer(0, 65535), 80)
        _apply(record, out, errs, path, "path", _v_service_path)
        for key in ("connect_timeout", "write_timeout", "read_timeout"):
            _apply(record, out, errs, path, key, _v_integer(1, 2**31 - 2), 60000)
        _apply(record, out, errs, path, "enabled", _v_boolean, True)
        _apply(record, out, errs, path, "tls_verify", _v_boolean)
        _apply(record, out, errs, path, "tls_verify_depth", _v_integer(0, 64))
        _apply(record, out, errs, path, "ca_certificates", _v_array(_v_uuid))
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
        for j, r in enumerate(_entries(record.get("routes"), errs, path, "routes"), 1):
            self._route(r, (*path, "routes", j), f"{label}.routes[{j}]", item)
        for j, p in enumerate(_entries(record.get("plugins"), errs, path, "plugins"), 1):
            self._plugin(p, (*path, "plugins", j), f"{label}.plugins[{j}]", item)

    def _certificate(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        """certificates.lua: ``cert``/``key`` required, valid and matching."""
        record = self._record(rec, path)
        if record is None:
            return
        errs = self.errs
        _check_fields(record, _CERTIFICATE_FIELDS, errs, path)
        out: dict[str, Any] = {}
        _validate_common(record, out, errs, path)
        check_cert = _v_certificate(referenceable=True)
        _apply(record, out, errs, path, "cert", check_cert, required=True)
        _apply(record, out, errs, path, "key", _v_key, required=True)
        for key in ("cert_alt", "key_alt"):
            if record.get(key) is not None:
                _unsupported(
                    errs,
                    path,
                    key,
                    "alternative certificates (served to clients, never to upstreams)",
                )
        for key in ("snis", "services", "upstreams"):
            if record.get(key) not in (None, []):
                _unsupported(
                    errs,
                    path,
                    key,
                    f"'{key}' in a certificate (reference the certificate by id instead)",
                )
        cert, key = out.get("cert"), out.get("key")
        # custom_entity_check: skipped when a field failed or holds a vault reference
        if (
            isinstance(cert, str)
            and isinstance(key, str)
            and not is_reference(cert)
            and not is_reference(key)
            and check_cert(cert) is None
            and _v_key(key) is None
            and not _certificate_matches_key(cert, key)
        ):
            errs.append(path, "@entity", "certificate does not match key")
        self.items.append(_Item("certificates", out, path, label))

    def _ca_certificate(self, rec: Any, path: tuple[Any, ...], label: str) -> None:
        """ca_certificates.lua: ``cert`` required (not referenceable), one CA certificate."""
        record = self._record(rec, path)
        if record is None:
            return
        errs = self.errs
        _check_fields(record, _CA_CERTIFICATE_FIELDS, errs, path)
        out: dict[str, Any] = {}
        _validate_common(record, out, errs, path)
        check_cert = _v_certificate(referenceable=False)
        _apply(record, out, errs, path, "cert", check_cert, required=True)
        _apply(record, out, errs, path, "cert_digest", _v_string)
        cert = out.get("cert")
        if isinstance(cert, str) and check_cert(cert) is None:
            problem = _ca_certificate_problem(cert)
            if problem is not None:
                errs.append(path, "@entity", problem)
        self.items.append(_Item("ca_certificates", out, path, label))

    def _route(self, rec: Any, path: tuple[Any, ...], label: str, parent: _Item | None) -> None:
        record = self._record(rec, path)
        if record is None:
            return
        errs = self.errs
        _check_fields(record, _ROUTE_FIELDS, errs, path)
        out: dict[str, Any] = {}
        before = _count_leaves(errs.tree)
        _validate_common(record, out, errs, path)
        _apply(record, out, errs, path, "name", _v_utf8_name)
        _apply(record, out, errs, path, "protocols", _v_protocols, ["http", "https"])
        _apply(
            record,
            out,
            errs,
            path,
            "https_redirect_status_code",
            _v_one_of((426, 301, 302, 307, 308)),
            426,
        )
        for key, default in (
            ("strip_path", True),
            ("preserve_host", False),
            ("request_buffering", True),
            ("response_buffering", True),
        ):
            _apply(record, out, errs, path, key, _v_boolean, default)
        _apply(record, out, errs, path, "methods", _v_array(_v_method, kind="set"), [])
        _apply(record, out, errs, path, "hosts", _v_array(_v_route_host), [])
        _apply(record, out, errs, path, "paths", _v_array(_v_router_path), [])
        _apply(record, out, errs, path, "regex_priority", _v_integer(), 0)
        _apply(record, out, errs, path, "path_handling", _v_one_of(("v0", "v1")), "v0")
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
        if isinstance(protocols, list) and protocols and not _v_protocols(protocols):
            unsupported = [p for p in protocols if p not in HARNESS_PROTOCOLS]
            if unsupported:
                _unsupported(errs, path, "protocols", f"{', '.join(unsupported)} routes")
        if _count_leaves(errs.tree) == before:
            self._route_entity_checks(out, path)
        item = _Item("routes", out, path, label, parent)
        self.items.append(item)
        for j, p in enumerate(_entries(record.get("plugins"), errs, path, "plugins"), 1):
            self._plugin(p, (*path, "plugins", j), f"{label}.plugins[{j}]", item)

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
            if not _HEADER_NAME_RE.fullmatch(name):
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
            err = _v_array(_v_string)(values)
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
            problem = _regex_problem(rx, anchored=is_path)
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

    def _plugin(self, rec: Any, path: tuple[Any, ...], label: str, parent: _Item | None) -> None:
        record = self._record(rec, path)
        if record is None:
            return
        errs = self.errs
        _check_fields(record, _PLUGIN_FIELDS, errs, path)
        out: dict[str, Any] = {}
        _validate_common(record, out, errs, path)
        _apply(record, out, errs, path, "name", _v_string, required=True)
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
        _apply(record, out, errs, path, "instance_name", _v_utf8_name)
        _apply(record, out, errs, path, "enabled", _v_boolean, True)
        _apply(
            record,
            out,
            errs,
            path,
            "protocols",
            _v_array(_v_one_of(PROTOCOLS), kind="set"),
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
            item.generated_key = key
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
        for item in self.items:
            if item.kind != "services":
                continue
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
        for item in self.items:
            if item.kind != "routes":
                continue
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
        for item in self.items:
            if item.kind != "plugins":
                continue
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


# --------------------------------------------------------------------------------------------
# The loaded configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclarativeConfig:
    """Services, routes and plugins of a declarative configuration, linked together, and
    the certificates the services use for upstream TLS."""

    format_version: str
    services: tuple[Service, ...]
    routes: tuple[Route, ...]
    plugins: tuple[PluginEntity, ...]
    certificates: tuple[Certificate, ...] = ()
    ca_certificates: tuple[CACertificate, ...] = ()

    @functools.cached_property
    def _combos(self) -> dict[str, dict[tuple[str | None, str | None], PluginEntity]]:
        """``plugins_iterator.lua`` ``PluginsIterator.new``: only plugins that are enabled and
        have an HTTP-subsystem protocol (``should_process_plugin``) are indexed, by name and
        (route id, service id)."""
        combos: dict[str, dict[tuple[str | None, str | None], PluginEntity]] = {}
        for plugin in self.plugins:
            if not plugin.enabled:
                continue
            if not any(p in HTTP_SUBSYSTEM_PROTOCOLS for p in plugin.protocols):
                continue
            key = (
                plugin.route.id if plugin.route else None,
                plugin.service.id if plugin.service else None,
            )
            combos.setdefault(plugin.name, {})[key] = plugin
        return combos

    def plugins_for(self, route: Route | None, service: Service | None) -> list[PluginEntity]:
        """For each plugin name, the configuration Kong runs for a request on ``route`` /
        ``service`` (``plugins_iterator.lua`` ``lookup_cfg``, no consumer): route+service,
        else route, else service, else global. Disabled plugins are not candidates at all,
        so a disabled route plugin lets the service or global one apply. Order: first
        appearance in the file (execution order by priority is the caller's business)."""
        route_id = route.id if route is not None else None
        service_id = service.id if service is not None else None
        result: list[PluginEntity] = []
        for combos in self._combos.values():
            found = None
            if route_id and service_id:
                found = combos.get((route_id, service_id))
            if found is None and route_id:
                found = combos.get((route_id, None))
            if found is None and service_id:
                found = combos.get((None, service_id))
            if found is None:
                found = combos.get((None, None))
            if found is not None:
                result.append(found)
        return result

    def global_plugins(self) -> list[PluginEntity]:
        """Enabled global plugins (the only ones Kong runs in ``rewrite``)."""
        return self.plugins_for(None, None)

    def service(self, name_or_id: str) -> Service:
        """The service with this name or id (``KeyError`` if none)."""
        for s in self.services:
            if name_or_id in (s.name, s.id):
                return s
        raise KeyError(name_or_id)

    def ca_certificate(self, ca_id: str) -> CACertificate | None:
        """The CA certificate with this id, or ``None`` (``kong.db.ca_certificates:select``)."""
        for ca in self.ca_certificates:
            if ca.id.lower() == ca_id.lower():
                return ca
        return None

    def route(self, name_or_id: str) -> Route:
        """The route with this name or id (``KeyError`` if none)."""
        for r in self.routes:
            if name_or_id in (r.name, r.id):
                return r
        raise KeyError(name_or_id)


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
