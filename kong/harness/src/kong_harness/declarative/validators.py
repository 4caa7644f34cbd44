"""Field validators for services, routes, plugins and certificates, with Kong's messages
(``kong/db/schema/typedefs.lua``, ``kong/db/schema/init.lua``, ``kong/db/schema/entities/*.lua``).

``v_<kind>`` is a :data:`Validator` (or, called with bounds or options, makes one): it answers
``None`` for a valid value, else Kong's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kong_harness.entities import PROTOCOLS
from kong_harness.router import (
    RegexTranslationError,
    normalize_uri,
    translate_path_regex,
)
from kong_harness.vault import is_reference

Validator = Callable[[Any], "str | dict[int, str] | None"]

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_UTF8_NAME_RE = re.compile(r"[A-Za-z0-9.\-_~\u0080-\U0010ffff]+")
_TAG_RE = re.compile(r"[ !-+\-.0-~\u0080-\U0010ffff]+")
HEADER_NAME_RE = re.compile(r"[a-zA-Z0-9\-_]+")
_METHOD_RE = re.compile(r"[A-Z]+")
_PATH_CHARS_RE = re.compile(r"/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*")


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


def v_string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def v_boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected a boolean"


def v_integer(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "expected an integer"
        if lo is not None and hi is not None and not lo <= int(v) <= hi:
            return f"value should be between {lo} and {hi}"
        return None

    return check


def v_one_of(options: Sequence[Any]) -> Validator:
    def check(v: Any) -> str | None:
        if v not in options:
            return "expected one of: " + ", ".join(str(o) for o in options)
        return None

    return check


def _v_matching(pattern: re.Pattern[str], problem: str) -> Validator:
    """A string ``pattern`` matches whole; else ``problem``, its ``{value}`` the string."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "expected a string"
        return None if pattern.fullmatch(v) else problem.format(value=v)

    return check


v_uuid = _v_matching(_UUID_RE, "expected a valid UUID")
v_utf8_name = _v_matching(
    _UTF8_NAME_RE,
    "invalid value '{value}': the only accepted ascii characters are "
    "alphanumerics or ., -, _, and ~",
)
v_tag = _v_matching(
    _TAG_RE,
    "invalid tag '{value}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences",
)


def v_array(elem: Validator, *, kind: str = "array") -> Validator:
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


def v_host(v: Any) -> str | None:
    """``typedefs.host``: a name or IP without port."""
    if not isinstance(v, str):
        return "expected a string"
    ok, port, err = _check_hostname(v)
    if err == "invalid port number" or (ok and port is not None):
        return "must not have a port"
    if not ok:
        return f"invalid value: {v}"
    return None


def v_route_host(v: Any) -> str | None:
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


def v_service_path(v: Any) -> str | None:
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


def v_router_path(v: Any) -> str | None:
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
    problem = regex_problem(v[1:], anchored=True)
    if problem is None or problem[0] == "rust":
        return None  # Rust-only rejections are reported by the route entity check, like Kong
    return f"invalid regex: '{v[1:]}' ({problem[1]})"


def regex_problem(rx: str, *, anchored: bool) -> tuple[str, str] | None:
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


v_method = _v_matching(_METHOD_RE, "invalid value: {value}")


def v_protocols(v: Any) -> str | dict[int, str] | None:
    err = v_array(v_one_of(PROTOCOLS), kind="set")(v)
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


def v_certificate(*, referenceable: bool) -> Validator:
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


def v_key(v: Any) -> str | None:
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


def certificate_matches_key(cert: str, key: str) -> bool:
    """certificates.lua entity check: the certificate's public key is the key's."""
    certificate = x509.load_pem_x509_certificate(cert.encode())
    private = serialization.load_pem_private_key(key.encode(), password=None)
    return _public_key_der(certificate.public_key()) == _public_key_der(private.public_key())


def ca_certificate_problem(cert: str) -> str | None:
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
