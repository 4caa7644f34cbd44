"""Kong's proxy access log, from kong.conf's ``proxy_access_log`` and ``nginx_http_log_format``.

kong/templates/nginx_kong.lua (3.9.3) writes ``access_log ${{PROXY_ACCESS_LOG}}`` in the
proxy server when the setting names a format (``<path> <format>``,
kong/cmd/utils/prefix_handler.lua: ``custom_proxy_access_log``), else
``access_log <path> kong_log_format`` (Kong's Apache-combined-like format, below), and
``access_log off`` for ``off``. ``nginx_http_log_format = <name> [escape=...] '<format>'``
is injected into the http block as ``log_format <value>;``.

nginx (src/http/modules/ngx_http_log_module.c): a variable that is not found writes ``-``,
or nothing with ``escape=json``; ``escape=json`` escapes ``"``, ``\\`` and bytes below 0x20
(``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f``, else ``\\u00XX``); the default escaping writes
``"``, ``\\`` and bytes below 0x20 or from 0x7f as ``\\xXX``; ``escape=none`` nothing.

Only the variables below are reproduced; a format naming another one is refused at start
(nginx too refuses an unknown variable). ``$http_<name>`` is the request header as the
upstream got it: Kong's ``kong.service.request.set_header(s)`` changes the request headers
in place (``ngx.req.set_header``, kong/pdk/service/request.lua), so a plugin's
``X-Request-ID`` or ``traceparent`` is what the log shows; several lines of one header are
joined with ``, `` (nginx 1.23+).
"""

from __future__ import annotations

import base64
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote_to_bytes

from kong_harness import pdk

# kong/templates/nginx_kong.lua
KONG_LOG_FORMAT_NAME = "kong_log_format"
KONG_LOG_FORMAT = (
    "$remote_addr - $remote_user [$time_local] "
    '"$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" '
    'kong_request_id: "$kong_request_id"'
)
DEFAULT_PROXY_ACCESS_LOG = "logs/access.log"  # kong/templates/kong_defaults.lua

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(\S+)")
_ESCAPES = ("default", "json", "none")


class AccessLogConfigError(ValueError):
    """kong.conf's access-log settings would not start nginx."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What the access log of one request can tell (the log phase's view)."""

    ctx: pdk.RequestContext
    status: int
    body_bytes_sent: int
    finished: float  # time.time() when the response was sent


def _request_line(entry: Entry) -> str:
    query = f"?{entry.ctx.raw_query}" if entry.ctx.raw_query else ""
    version = entry.ctx.http_version
    protocol = "HTTP/2.0" if version == 2 else f"HTTP/{version:.1f}"
    return f"{entry.ctx.method} {entry.ctx.raw_path}{query} {protocol}"


def _remote_user(entry: Entry) -> str | None:
    """ngx_http_variable_remote_user: the user of a Basic ``Authorization``."""
    values = entry.ctx.header_values("Authorization")
    if not values or not values[0][:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(values[0][6:].strip(), validate=True).decode("latin-1")
    except ValueError:
        return None
    user, sep, _ = decoded.partition(":")
    return user if sep else None


def _uri(entry: Entry) -> str:
    """nginx's ``$uri``: the path decoded, dot segments resolved, slashes merged
    (ngx_http_parse_complex_uri with merge_slashes on), bytes as latin-1."""
    path = unquote_to_bytes(entry.ctx.raw_path).decode("latin-1")
    segments = re.sub("/{2,}", "/", path).split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments and segments[-1] in (".", ".."):
        out.append("")  # "/a/." is "/a/"
    return "/" + "/".join(out)


def _header(name: str) -> Callable[[Entry], str | None]:
    header = name.replace("_", "-")

    def value(entry: Entry) -> str | None:
        values = entry.ctx.header_values(header)
        return ", ".join(values) if values else None

    return value


_VARIABLES: dict[str, Callable[[Entry], str | None]] = {
    "remote_addr": lambda e: e.ctx.remote_addr,
    "remote_user": _remote_user,
    "time_local": lambda e: time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(e.finished)),
    "time_iso8601": lambda e: _iso8601(e.finished),
    "msec": lambda e: f"{e.finished:.3f}",
    "request": _request_line,
    "request_method": lambda e: e.ctx.method,
    "request_uri": lambda e: e.ctx.raw_path + (f"?{e.ctx.raw_query}" if e.ctx.raw_query else ""),
    "uri": _uri,
    "status": lambda e: f"{e.status:03d}",
    "body_bytes_sent": lambda e: str(e.body_bytes_sent),
    "request_time": lambda e: f"{max(0.0, e.finished - e.ctx.start_time):.3f}",
    "kong_request_id": lambda e: e.ctx.request_id,
}


def _iso8601(when: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))
    return f"{stamp[:-2]}:{stamp[-2:]}"


def _escape(value: str, escape: str) -> str:
    if escape == "none":
        return value
    out = []
    for char in value:
        code = ord(char)
        if escape == "json":
            if char in '"\\':
                out.append("\\" + char)
            elif code < 0x20:
                named = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
                out.append(named.get(char, f"\\u{code:04x}"))
            else:
                out.append(char)
        elif char in '"\\' or code < 0x20 or 0x7F <= code <= 0xFF:
            out.append(f"\\x{code:02X}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class LogFormat:
    name: str
    escape: str
    template: str

    @classmethod
    def parse(cls, value: str) -> LogFormat:
        """``<name> [escape=default|json|none] '<format>' ['<more>'...]`` (nginx joins the
        strings)."""
        words = [
            next(g for g in match.groups() if g is not None) for match in _QUOTED.finditer(value)
        ]
        if len(words) < 2:
            raise AccessLogConfigError(f"log_format needs a name and a format: {value!r}")
        name, rest = words[0], words[1:]
        escape = "default"
        if rest[0].startswith("escape="):
            escape = rest[0].partition("=")[2]
            rest = rest[1:]
            if escape not in _ESCAPES:
                raise AccessLogConfigError(f'unknown log format escaping "{escape}"')
        template = "".join(rest)
        for match in _VARIABLE.finditer(template):
            variable = match.group(1) or match.group(2)
            if variable not in _VARIABLES and not variable.startswith("http_"):
                raise AccessLogConfigError(f'unknown "{variable}" variable')
        return cls(name, escape, template)

    def render(self, entry: Entry) -> str:
        def substitute(match: re.Match[str]) -> str:
            variable = match.group(1) or match.group(2)
            getter = _VARIABLES.get(variable)
            value = getter(entry) if getter else _header(variable[5:])(entry)
            if value is None:
                return "" if self.escape == "json" else "-"
            return _escape(value, self.escape)

        return _VARIABLE.sub(substitute, self.template)


KONG_FORMAT = LogFormat(KONG_LOG_FORMAT_NAME, "default", KONG_LOG_FORMAT)


@dataclass(frozen=True, slots=True)
class AccessLog:
    """Where and how the proxy's access log is written."""

    path: str
    log_format: LogFormat

    @classmethod
    def from_conf(cls, conf: Mapping[str, str]) -> AccessLog | None:
        """``None`` for ``proxy_access_log = off``."""
        setting = conf.get("proxy_access_log", DEFAULT_PROXY_ACCESS_LOG).strip()
        if setting == "off":
            return None
        path, _, name = setting.partition(" ")
        name = name.strip()
        if not name or name == KONG_LOG_FORMAT_NAME:
            return cls(path, KONG_FORMAT)
        custom = conf.get("nginx_http_log_format")
        log_format = LogFormat.parse(custom) if custom else None
        if log_format is None or log_format.name != name:
            raise AccessLogConfigError(f'unknown log format "{name}" in proxy_access_log')
        return cls(path, log_format)

    def stream_for(self, prefix: str) -> TextIO:
        """``/dev/stdout`` and ``/dev/stderr`` are the harness's own streams; a relative
        path is under Kong's prefix, as nginx resolves it."""
        if self.path == "/dev/stdout":
            return sys.stdout
        if self.path == "/dev/stderr":
            return sys.stderr
        path = Path(self.path) if Path(self.path).is_absolute() else Path(prefix) / self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a", encoding="utf-8", errors="surrogateescape")

    def line(self, entry: Entry) -> str:
        return self.log_format.render(entry)
