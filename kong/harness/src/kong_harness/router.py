"""Kong's HTTP router, ``router_flavor = traditional_compatible`` (the Kong 3.x default).

In that flavor Kong turns every route into an ATC expression (``kong/router/transform.lua``
``get_expression``), gives it a 64-bit priority (``transform.lua`` ``get_priority``) and hands
both to the Rust ``atc-router``, which evaluates the matchers in *descending
(priority, route UUID)* order and returns the first one that matches
(``atc-router/src/router.rs``: a ``BTreeMap<(priority, uuid)>`` iterated with ``.rev()``).
This module reproduces that pipeline in Python.

Matching (per route, all configured fields must match; any value of a field may match)
-------------------------------------------------------------------------------------
* request path: the query is cut at the first ``?`` after the first byte, then the path is
  normalised like ``kong/tools/uri.lua`` ``normalize(uri, true)`` (``utils.strip_uri_args``):
  ``%XX`` of non-reserved bytes decoded, reserved ones upper-cased, dot segments removed,
  ``//`` merged.  A path that is not valid UTF-8 afterwards matches nothing (atc.lua logs
  "router returned an error" and Kong answers 404).
* ``paths``: plain paths are *literal* prefixes of the normalised path (route paths are not
  normalised since 3.0); ``~`` paths are regexes anchored with ``^`` (``path_val_transform``).
* ``hosts``: compared with the request ``Host`` with its ``:port`` split off at the first
  colon (``transform.split_host_port``), case-sensitively like Kong; ``*.example.com`` is an
  "ends with ``.example.com``", ``example.*`` a "starts with ``example.``"; a route host with
  ``:port`` also requires ``net.dst.port`` (the Host port, else the proxy's listening port).
* ``methods``: exact, case-sensitive.
* ``headers``: every configured header name must be present with one of its values, compared
  lower-cased; a value ``~*re`` is a regex (lower-cased, unanchored) on the lower-cased value.

Priority order (what wins when several routes match)
----------------------------------------------------
Routes are first split by path group (one regex group + one group per prefix length,
``transform.split_routes_and_services_by_path``); each piece gets
``uuid5(7f145bf9-…, "<route id>#<group index>")`` when the route was split. Then, highest
first, as laid out by ``get_priority``:

1. match weight: number of non-empty fields among methods, hosts, headers, paths (and snis,
   sources, destinations, which the harness does not support);
2. "plain hosts only": the route has ``hosts`` and none of them contains ``*``;
3. number of header names;
4. the path group is a regex group;
5. ``regex_priority`` (regex groups only);
6. byte length of the prefix (prefix groups only; all prefixes in a group have one length);
7. tie: the greater route UUID wins (not ``created_at``: the docs say so, and router.rs
   iterates ``(priority, uuid)`` in reverse).

Exactness note (``exact_luajit_priority=True``, the default): Kong computes fields 1, 3 and 5
with LuaJIT ``bit.lshift`` on *Lua numbers* (``lshift_uint64`` rebinds its cdata upvalue
instead of filling it), which are 32-bit operations with the shift count taken mod 32.  In
real Kong those three fields therefore land in bits 29-31 / 20-27 / 19+ of a 32-bit value
(sign-extended when bit 31 is set), while "plain hosts only" (bit 60) and "regex" (bit 51)
are true 64-bit constants.  Observable consequences reproduced here: a route with only a
regex path (or only plain hosts) outranks a route with *more* fields that has neither, a
route with 4+ fields (or a negative ``regex_priority``) jumps above everything, and
``regex_priority`` bits overlap the header count.  (Verified with LuaJIT; the sign
extension of negative values follows gcc's x86-64 double-to-uint64 conversion.)  Pass
``exact_luajit_priority=False`` to get the documented 64-bit layout instead.

Upstream URI and host
---------------------
``traditional_compatible`` always joins paths with ``path_handling`` "v0"
(``atc.lua`` ``set_upstream_uri`` -> ``utils.get_upstream_uri_v0``); a route's "v1" is accepted
by the schema but has no effect (``routes.lua`` deprecation message). The "v1" join of the
``traditional`` flavor is still available as :func:`join_upstream_path` for reference. The
result is percent-escaped like ``handler.lua`` (``var.upstream_uri = escape(...)``); the query
string is *not* included (Kong appends ``?args`` later). ``upstream_host`` is the Host header
sent upstream: the request's Host (with port) when ``preserve_host``, else the service host
with ``:port`` unless the port is the scheme default (``balancer.set_host_header``).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kong_harness.entities import Route, Service

__all__ = [
    "DEFAULT_SERVER_PORT",
    "RegexTranslationError",
    "RouteMatch",
    "Router",
    "UriCaptures",
    "compat_priority",
    "escape_uri",
    "join_upstream_path",
    "normalize_uri",
    "split_host_port",
    "translate_path_regex",
]

#: Kong's proxy port (``proxy_listen`` in kong/templates/kong_defaults.lua; docs/architecture.md
#: "Ports"); used as ``net.dst.port`` when Host has no port.
DEFAULT_SERVER_PORT = 8000

# kong/router/transform.lua: uuid generator for split routes
_SPLIT_ROUTE_NAMESPACE = uuid.UUID("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")

# kong/tools/uri.lua
_RESERVED = frozenset("!*'();:@&=+$,/?%#[]")
_PERCENT_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
_ESCAPE_SAFE = frozenset(
    b"!#$&'()*+,/:;=?@[]ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%"
)


# --------------------------------------------------------------------------------------------
# URI helpers (kong/tools/uri.lua, kong/router/utils.lua)
# --------------------------------------------------------------------------------------------


def _decode_triplet(m: re.Match[str]) -> str:
    byte = int(m.group(1), 16)
    char = chr(byte)
    if char in _RESERVED:
        return "%" + m.group(1).upper()
    return char


def normalize_uri(uri: str, merge_slashes: bool = True) -> str:
    """Normalise a request path like ``kong/tools/uri.lua`` ``normalize``.

    ``uri`` is a *byte string held in a str* (one char per byte, i.e. latin-1): that is what
    Lua sees. Percent-encoded non-reserved bytes are decoded, reserved ones are upper-cased,
    dot segments are removed (RFC 3986 5.2.4) and, with ``merge_slashes``, ``//`` become ``/``.
    """
    if uri in ("", "/"):
        return uri
    if "%" in uri:
        uri = _PERCENT_TRIPLET.sub(_decode_triplet, uri)
    if "." not in uri and (not merge_slashes or "//" not in uri):
        return uri

    out: list[str] = []
    while uri:
        if uri == "/.":
            uri = "/"
        elif uri == "/..":
            uri = "/"
            if out:
                out.pop()
        elif uri in (".", ".."):
            uri = ""
        elif uri.startswith("../"):
            uri = uri[3:]
        elif uri.startswith("./"):
            uri = uri[2:]
        elif uri.startswith("/./"):
            uri = uri[2:]
        elif uri.startswith("/../"):
            uri = uri[3:]
            if out:
                out.pop()
        elif merge_slashes and uri.startswith("//"):
            uri = uri[1:]
        else:
            i = uri.find("/", 1)
            if i == -1:
                out.append(uri)
                uri = ""
            else:
                out.append(uri[:i])
                uri = uri[i:]
    return "".join(out)


def escape_uri(uri: str) -> str:
    """Percent-escape what ``kong/tools/uri.lua`` ``escape`` escapes (UTF-8 bytes outside
    RFC 3986 reserved/unreserved and ``%``); Kong applies it to the upstream URI."""
    raw = uri.encode("utf-8", "surrogateescape")
    if all(b in _ESCAPE_SAFE for b in raw):
        return uri
    return "".join(chr(b) if b in _ESCAPE_SAFE else f"%{b:02X}" for b in raw)


def _sanitize_uri_postfix(postfix: str) -> str:
    """``kong/router/utils.lua`` ``sanitize_uri_postfix``."""
    if postfix in ("", ".", ".."):
        return ""
    if postfix.startswith("./"):
        return postfix[2:]
    if postfix.startswith("../"):
        return postfix[3:]
    return postfix


def _upstream_uri_v0(strip_path: bool, postfix: str, req_uri: str, base: str) -> str:
    """``kong/router/utils.lua`` ``get_upstream_uri_v0``."""
    if base.endswith("/"):
        if strip_path:
            if postfix == "":
                if base == "/":
                    return "/"
                if req_uri.endswith("/"):
                    return base
                return base[:-1]
            if postfix.startswith("/"):
                return base[:-1] + postfix
            return base + postfix
        return base + req_uri[1:]
    if strip_path:
        if postfix == "":
            if len(req_uri) > 1 and req_uri.endswith("/"):
                return base + "/"
            return base
        if postfix.startswith("/"):
            return base + postfix
        return base + "/" + postfix
    if req_uri == "/":
        return base
    return base + req_uri


def _upstream_uri_v1(strip_path: bool, postfix: str, req_uri: str, base: str) -> str:
    """``path_handling = "v1"`` of ``kong/router/traditional.lua`` ``find_match``."""
    if strip_path:
        if base.endswith("/") and postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    return base + req_uri[1:]


def join_upstream_path(
    service_path: str | None,
    request_path: str,
    matched_prefix: str | None,
    strip_path: bool,
    path_handling: str = "v0",
) -> str:
    """Join service path and (normalised) request path the way Kong does.

    ``matched_prefix`` is the part of ``request_path`` the route's path matched (``None`` when
    the route matched without ``paths``). "v0" is ``utils.get_upstream_uri_v0`` (the only one
    ``traditional_compatible`` uses); "v1" is the ``traditional`` flavor's rule.
    """
    base = service_path or "/"
    prefix = matched_prefix if (strip_path and matched_prefix is not None) else "/"
    postfix = _sanitize_uri_postfix(request_path[len(prefix) :])
    if path_handling == "v1":
        return _upstream_uri_v1(strip_path, postfix, request_path, base)
    if path_handling != "v0":
        raise ValueError(f"unknown path_handling {path_handling!r}")
    return _upstream_uri_v0(strip_path, postfix, request_path, base)


def split_host_port(value: str) -> tuple[str, int | None]:
    """``kong/router/transform.lua`` ``split_host_port``: split at the *first* ``:``; the rest
    must be a number, else the whole value is the host (so ``[::1]:80`` is a host)."""
    p = value.find(":")
    if p == -1:
        return value, None
    rest = value[p + 1 :].strip()
    if not re.fullmatch(r"[0-9]+", rest):
        return value, None
    return value[:p], int(rest)


# --------------------------------------------------------------------------------------------
# Regexes: Kong feeds "^" + path (with "?<" -> "?P<") to Rust's `regex` crate.
# --------------------------------------------------------------------------------------------


class RegexTranslationError(ValueError):
    """A route regex cannot be used: ``rust_rejects`` tells whether Kong itself rejects it
    (atc-router's Rust regex has no such feature) or only the harness cannot translate it."""

    def __init__(self, message: str, *, rust_rejects: bool) -> None:
        super().__init__(message)
        self.rust_rejects = rust_rejects


_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")


def _translate(pattern: str) -> tuple[str, str]:
    """Translate Rust-regex syntax to Python ``re``; returns (global_flags, body)."""
    out: list[str] = []
    global_flags = ""
    # "$" is end-of-text in Rust unless multi-line mode is on somewhere (then keep Python's)
    multiline = re.search(r"\(\?[a-zA-Z]*m[a-zA-Z]*[-:)]", pattern) is not None
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                out.append(c)
                i += 1
                continue
            nxt = pattern[i + 1]
            if nxt.isdigit():
                raise RegexTranslationError(
                    "backreferences and octal escapes are not supported", rust_rejects=True
                )
            if nxt == "k" and i + 2 < n and pattern[i + 2] in "<{'":
                raise RegexTranslationError("backreferences are not supported", rust_rejects=True)
            if nxt in "pP":
                raise RegexTranslationError(
                    "Unicode classes (\\p{..}) cannot be translated to Python re",
                    rust_rejects=False,
                )
            if nxt in "<>" or (nxt == "b" and i + 2 < n and pattern[i + 2] == "{"):
                raise RegexTranslationError(
                    "word-boundary assertions \\<, \\>, \\b{..} cannot be translated",
                    rust_rejects=False,
                )
            if nxt == "Z":
                raise RegexTranslationError("\\Z is not supported", rust_rejects=True)
            if nxt == "z":
                out.append("\\Z")
                i += 2
                continue
            if nxt == "x" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                hexdigits = pattern[i + 3 : end] if end != -1 else ""
                if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", hexdigits):
                    raise RegexTranslationError("invalid \\x{..} escape", rust_rejects=True)
                out.append(f"\\U{int(hexdigits, 16):08x}")
                i = end + 1
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[":
                if pattern.startswith("[:", i):
                    raise RegexTranslationError(
                        "POSIX classes ([[:alpha:]]) cannot be translated", rust_rejects=False
                    )
                raise RegexTranslationError(
                    "nested character classes cannot be translated", rust_rejects=False
                )
            if pattern.startswith(("&&", "--", "~~"), i):
                raise RegexTranslationError(
                    "character class set operations cannot be translated", rust_rejects=False
                )
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":  # negation
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading "]" is a literal
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2 :]
            if rest.startswith(("=", "!", "<=", "<!", "P<=", "P<!")):
                raise RegexTranslationError("look-around is not supported", rust_rejects=True)
            if rest.startswith(("P=", "P>", "(", "#", ">", "|", "R)", "&")):
                raise RegexTranslationError(
                    f"'(?{rest[:2]}' groups are not supported", rust_rejects=True
                )
            m = _FLAG_GROUP.match(pattern, i)
            if m:
                on, off, kind = m.group(1), m.group(2) or "", m.group(3)
                bad = set(on + off) - set("imsxu")
                if bad:
                    raise RegexTranslationError(
                        f"inline flag(s) {''.join(sorted(bad))!r} cannot be translated",
                        rust_rejects=not set(on + off) <= set("imsxuUR"),
                    )
                on_py = on.replace("u", "")
                off_py = off.replace("u", "")
                if kind == ")":
                    if off_py or out:
                        raise RegexTranslationError(
                            "flags set in the middle of a pattern cannot be translated",
                            rust_rejects=False,
                        )
                    global_flags += on_py
                elif not on_py and not off_py:
                    out.append("(?:")
                else:
                    out.append(f"(?{on_py}{'-' + off_py if off_py else ''}:")
                i = m.end()
                continue
        if c in "*+?}" and i + 1 < n and pattern[i + 1] == "+":
            raise RegexTranslationError(
                "possessive quantifiers are not supported", rust_rejects=True
            )
        if c == "$" and not multiline:
            # Rust: end of text only; Python's "$" also matches before a final newline
            out.append("\\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise RegexTranslationError("unclosed character class", rust_rejects=True)
    return global_flags, "".join(out)


@functools.lru_cache(maxsize=4096)
def translate_path_regex(regex: str, *, anchored: bool = True) -> re.Pattern[str]:
    """Compile a route regex (without its ``~``) as Kong hands it to atc-router.

    ``anchored`` prefixes ``^`` (paths: ``transform.path_val_transform``); header regexes
    (``~*``) are unanchored. Kong's literal ``"?<" -> "?P<"`` rewrite is applied. Raises
    :class:`RegexTranslationError` for constructs Rust rejects or the harness cannot map.
    """
    rust = regex.replace("?<", "?P<")
    flags, body = _translate(rust)
    text = (f"(?{flags})" if flags else "") + ("^" if anchored else "") + body
    try:
        return re.compile(text)
    except re.error as exc:
        raise RegexTranslationError(str(exc), rust_rejects=True) from exc


# --------------------------------------------------------------------------------------------
# Priority (kong/router/transform.lua get_priority)
# --------------------------------------------------------------------------------------------

_PLAIN_HOST_ONLY_BIT = 1 << 60
_REGEX_URL_BIT = 1 << 51
_MAX_HEADER_COUNT = 255


def _tobit(x: int) -> int:
    """LuaJIT ``bit.tobit``: wrap to a signed 32-bit integer."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _lshift32(x: int, n: int) -> int:
    """LuaJIT ``bit.lshift`` on a Lua number: 32-bit, shift count mod 32."""
    return _tobit(_tobit(x) << (n & 31))


def compat_priority(
    *,
    match_weight: int,
    plain_host_only: bool,
    headers_count: int,
    regex_url: bool,
    regex_priority: int,
    uri_length: int,
    exact_luajit_priority: bool = True,
) -> int:
    """The ATC priority of one (split) route, as ``transform.lua`` ``get_priority`` yields it.

    With ``exact_luajit_priority`` the 32-bit LuaJIT arithmetic of real Kong is reproduced
    (see the module docstring); without it, the documented 64-bit layout is used.
    """
    headers_count = min(headers_count, _MAX_HEADER_COUNT)
    rp = regex_priority if regex_url else 0
    length = uri_length & 0x7FFFF
    flags = (_PLAIN_HOST_ONLY_BIT if plain_host_only else 0) | (_REGEX_URL_BIT if regex_url else 0)
    if not exact_luajit_priority:
        value = (match_weight << 61) | (headers_count << 52) | (rp << 19) | length
        return (value & ((1 << 64) - 1)) | flags
    low = (
        _lshift32(match_weight, 61) | _lshift32(headers_count, 52) | _lshift32(rp, 19) | length
    ) & 0xFFFFFFFF
    if low & 0x80000000:  # negative Lua number -> uint64 (sign extension)
        low |= 0xFFFFFFFF00000000
    return low | flags


# --------------------------------------------------------------------------------------------
# Matchers
# --------------------------------------------------------------------------------------------


UriCaptures = dict[str, dict[Any, str]]
"""``{"unnamed": {0: whole match, 1: ...}, "named": {name: ...}}`` -- the table
``kong.request.get_uri_captures()`` returns (``kong/pdk/request.lua`` ``capture_wrap``); both
parts are empty when the route matched without capture groups (atc.lua ``has_capture``)."""


@dataclass(frozen=True)
class RouteMatch:
    """The router's answer (``atc.lua`` ``matching`` + ``exec``; escaping from handler.lua)."""

    route: Route
    service: Service | None
    #: path sent upstream, percent-escaped like ``var.upstream_uri`` (no query string)
    upstream_uri: str
    #: Host header sent upstream (request Host if ``preserve_host``, else service host[:port])
    upstream_host: str | None
    #: as ``kong.request.get_uri_captures()`` returns them
    uri_captures: UriCaptures = field(hash=False)
    #: what the route's path matched: the prefix, or the whole regex match; None w/o paths
    matched_path: str | None
    #: the normalised request path the router matched against
    request_path: str
    upstream_scheme: str | None = None


@dataclass(frozen=True)
class _HostPredicate:
    op: str  # "==", "=^" (ends with), "^=" (starts with)
    value: str
    port: int | None

    def test(self, host: str, dst_port: int | None) -> bool:
        if self.op == "==":
            ok = host == self.value
        elif self.op == "=^":
            ok = host.endswith(self.value)
        else:
            ok = host.startswith(self.value)
        return ok and (self.port is None or dst_port == self.port)


@dataclass(frozen=True)
class _HeaderPredicate:
    names: tuple[str, str]  # lookup order: underscore form, dash form
    # one entry per configured value, in order: a lower-cased string or a regex
    alternatives: tuple[str | re.Pattern[str], ...]


@dataclass
class _Candidate:
    route: Route
    service: Service | None
    uuid: uuid.UUID
    priority: int
    methods: frozenset[str]
    hosts: tuple[_HostPredicate, ...]
    prefixes: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]
    headers: tuple[_HeaderPredicate, ...]
    has_paths: bool

    def match(
        self,
        method: str,
        host: str | None,
        dst_port: int | None,
        path: str,
        headers: Mapping[str, list[str]],
    ) -> tuple[str | None, dict[str, str]] | None:
        # Same order as transform.get_expression: methods && hosts && paths && headers
        if self.methods and method not in self.methods:
            return None
        if self.hosts:
            if host is None or not any(h.test(host, dst_port) for h in self.hosts):
                return None
        captures: dict[str, str] = {}
        matched: str | None = None
        if self.has_paths:
            for prefix in self.prefixes:
                if path.startswith(prefix):
                    matched = prefix
                    break
            else:
                for rx in self.regexes:
                    m = rx.search(path)
                    if m:
                        matched = m.group(0)
                        _add_captures(captures, m)
                        break
            if matched is None:
                return None
        for hp in self.headers:
            values = headers.get(hp.names[0])
            if values is None:
                values = headers.get(hp.names[1])
            if not values:
                return None
            if not self._header_ok(hp, values, captures):
                return None
        return matched, captures

    @staticmethod
    def _header_ok(hp: _HeaderPredicate, values: list[str], captures: dict[str, str]) -> bool:
        """``(any(lower(h)) == "v1" || any(lower(h)) ~ "re" || ...)`` in configured order."""
        lowered = [v.lower() for v in values]
        for alt in hp.alternatives:
            if isinstance(alt, str):
                if alt in lowered:
                    return True
                continue
            for v in lowered:
                m = alt.search(v)
                if m:
                    _add_captures(captures, m)  # atc-router keeps these too (interpreter.rs)
                    return True
        return False


def _add_captures(captures: dict[str, str], m: re.Match[str]) -> None:
    """atc-router ``interpreter.rs``: every participating group by index, plus named ones."""
    for i in range(m.re.groups + 1):
        value = m.group(i)
        if value is not None:
            captures[str(i)] = value
    for name, value in m.groupdict().items():
        if value is not None:
            captures[name] = value


def _wrap_captures(captures: Mapping[str, str]) -> UriCaptures:
    unnamed: dict[Any, str] = {}
    named: dict[Any, str] = {}
    if len(captures) >= 2:  # atc.lua has_capture: only the whole match -> no captures
        for key, value in captures.items():
            if key.isdigit():
                unnamed[int(key)] = value
            else:
                named[key] = value
    return {"unnamed": dict(sorted(unnamed.items())), "named": named}


def _path_groups(paths: Sequence[str]) -> list[list[str]]:
    """``transform.lua`` ``group_by_regex_or_length``: one group for all regexes, one per
    prefix byte length, in order of first appearance."""
    groups: dict[int, list[str]] = {}
    for p in paths:
        key = -1 if p.startswith("~") else len(p.encode("utf-8"))
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _route_uuid(route: Route) -> uuid.UUID:
    try:
        return uuid.UUID(str(route.id))
    except ValueError as exc:
        raise ValueError(f"could not categorize route: id {route.id!r} is not a UUID") from exc


def _host_predicates(hosts: Iterable[str]) -> tuple[_HostPredicate, ...]:
    preds = []
    for h in hosts:
        host, port = split_host_port(h)
        if host.startswith("*"):
            preds.append(_HostPredicate("=^", host[1:], port))
        elif host.endswith("*"):
            preds.append(_HostPredicate("^=", host[:-1], port))
        else:
            preds.append(_HostPredicate("==", host, port))
    return tuple(preds)


def _header_predicates(headers: Mapping[str, Sequence[str]]) -> tuple[_HeaderPredicate, ...]:
    """``transform.lua``: ``any(lower(http.headers.<name, dashes as _>))`` compared with the
    lower-cased value, or matched against the lower-cased ``~*`` regex."""
    preds = []
    for name, values in headers.items():
        key = name.lower().replace("-", "_")
        alternatives: list[str | re.Pattern[str]] = []
        for value in values:
            if value.startswith("~*"):
                alternatives.append(translate_path_regex(value[2:].lower(), anchored=False))
            else:
                alternatives.append(value.lower())
        preds.append(_HeaderPredicate((key, key.replace("_", "-")), tuple(alternatives)))
    return tuple(preds)


class Router:
    """Kong's ``traditional_compatible`` router over a list of routes.

    Routes whose service is disabled are left out (``handler.lua`` ``new_router``), as are
    routes without an HTTP-subsystem protocol. Raises ``ValueError`` for a route whose id
    is not a UUID (atc.lua: "could not categorize route") or whose regex cannot be used
    (:class:`RegexTranslationError`).
    """

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        server_port: int = DEFAULT_SERVER_PORT,
        exact_luajit_priority: bool = True,
    ) -> None:
        self.server_port = server_port
        self.exact_luajit_priority = exact_luajit_priority
        candidates: list[_Candidate] = []
        seen: set[uuid.UUID] = set()
        for route in routes:
            service = route.service
            if service is not None and service.enabled is False:
                continue
            if not any(p in ("http", "https", "grpc", "grpcs") for p in route.protocols):
                continue
            route_uuid = _route_uuid(route)
            if route_uuid in seen:
                raise ValueError(f"duplicate route id {route.id}")
            seen.add(route_uuid)
            groups = _path_groups(route.paths) if route.paths else [[]]
            split = len(groups) > 1
            for index, group in enumerate(groups, start=1):
                cand_uuid = (
                    uuid.uuid5(_SPLIT_ROUTE_NAMESPACE, f"{route.id}#{index}")
                    if split
                    else route_uuid
                )
                candidates.append(self._candidate(route, service, cand_uuid, group))
        candidates.sort(key=lambda c: (c.priority, c.uuid.int), reverse=True)
        self._candidates = candidates

    def _candidate(
        self, route: Route, service: Service | None, cand_uuid: uuid.UUID, paths: list[str]
    ) -> _Candidate:
        regex_paths = [p[1:] for p in paths if p.startswith("~")]
        prefixes = tuple(p for p in paths if not p.startswith("~"))
        hosts = tuple(route.hosts)
        weight = sum(1 for f in (route.methods, hosts, route.headers, paths) if f)
        priority = compat_priority(
            match_weight=weight,
            plain_host_only=bool(hosts) and not any("*" in h for h in hosts),
            headers_count=len(route.headers),
            regex_url=bool(regex_paths),
            regex_priority=route.regex_priority,
            uri_length=len(prefixes[0].encode("utf-8")) if prefixes else 0,
            exact_luajit_priority=self.exact_luajit_priority,
        )
        return _Candidate(
            route=route,
            service=service,
            uuid=cand_uuid,
            priority=priority,
            methods=frozenset(route.methods),
            hosts=_host_predicates(hosts),
            prefixes=prefixes,
            regexes=tuple(translate_path_regex(p) for p in regex_paths),
            headers=_header_predicates(route.headers),
            has_paths=bool(paths),
        )

    @property
    def evaluation_order(self) -> list[tuple[Route, int]]:
        """(route, priority) in the order the router tries them (split routes appear once per
        path group)."""
        return [(c.route, c.priority) for c in self._candidates]

    def match(
        self,
        method: str,
        host: str | None,
        path: str | bytes,
        headers: Mapping[str, Sequence[str] | str] | None = None,
        *,
        server_port: int | None = None,
    ) -> RouteMatch | None:
        """Find the route for a request, or ``None`` (Kong's 404 "no Route matched").

        ``host`` is the raw ``Host`` header (``None`` when absent). ``path`` is the raw
        request target; a ``str`` is UTF-8 encoded first, ``bytes`` are taken as sent. The
        query string, if any, is ignored for matching. ``server_port`` is the port the
        request arrived on (``net.dst.port`` when Host has no port).
        """
        raw = path if isinstance(path, bytes) else path.encode("utf-8")
        req = raw.decode("latin-1")
        q = req.find("?", 1)
        if q != -1:
            req = req[:q]
        normalized = normalize_uri(req, merge_slashes=True)
        try:
            req_uri = normalized.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return None  # atc.lua: "router returned an error" -> 404

        req_host: str | None = host
        host_only: str | None = None
        dst_port: int | None = None
        if req_host is not None:
            host_only, dst_port = split_host_port(req_host)
        if dst_port is None:
            dst_port = self.server_port if server_port is None else server_port

        lowered = _lower_headers(headers)
        for cand in self._candidates:
            result = cand.match(method, host_only, dst_port, req_uri, lowered)
            if result is None:
                continue
            matched, captures = result
            return self._build(cand, req_uri, req_host, matched, captures)
        return None

    @staticmethod
    def _build(
        cand: _Candidate,
        req_uri: str,
        req_host: str | None,
        matched: str | None,
        captures: Mapping[str, str],
    ) -> RouteMatch:
        route, service = cand.route, cand.service
        http_service = service is not None and service.protocol in (
            "http",
            "https",
            "grpc",
            "grpcs",
        )
        service_path = (service.path or "/") if http_service and service is not None else None
        upstream = join_upstream_path(service_path, req_uri, matched, route.strip_path, "v0")
        upstream_host: str | None = None
        if route.preserve_host and req_host:
            upstream_host = req_host
        elif service is not None:
            upstream_host = service.host
            port, scheme = service.port, service.protocol
            default = (port == 80 and scheme in ("http", "grpc")) or (
                port == 443 and scheme in ("https", "grpcs")
            )
            if not default:
                upstream_host = f"{upstream_host}:{port}"
        return RouteMatch(
            route=route,
            service=service,
            upstream_uri=escape_uri(upstream),
            upstream_host=upstream_host,
            uri_captures=_wrap_captures(captures),
            matched_path=matched,
            request_path=req_uri,
            upstream_scheme=service.protocol if service is not None else None,
        )


def _lower_headers(headers: Mapping[str, Sequence[str] | str] | None) -> dict[str, list[str]]:
    """ngx.req.get_headers(): lower-cased names, every value kept."""
    result: dict[str, list[str]] = {}
    if not headers:
        return result
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else list(value)
        result.setdefault(name.lower(), []).extend(values)
    return result
