"""Plugin-server log lines: one JSON object per line, the backend's shape.

Every line carries ``ts``, ``level``, ``logger``, ``message`` and ``service`` (the plugin's
name, e.g. ``edge-jwt``) — the key names of ``auth_backend.core.logs`` — plus
``request_id``, ``trace_id`` and ``span_id`` of the event being handled when the plugin
bound them (:func:`bind_event`), ``exc_type``/``exc`` for exception records.

The ids come from data a plugin already read, never from an extra PDK call:
edge-trace binds the request id it decided and the gateway span it started; edge-jwt binds
them from the request headers it reads anyway. edge-trace writes the request id and
``traceparent`` with ``kong.service.request.set_headers``, which changes the request's
headers in place (``ngx.req.set_header``, kong/pdk/service/request.lua), so a later
plugin's ``kong.request.get_headers()`` sees edge-trace's values: its ``traceparent``
names the gateway span (trace id, and the gateway span as parent id).

The ids live in a :class:`contextvars.ContextVar`. :mod:`edge_plugins.pdk_bridge` runs each
event in a fresh context, so nothing leaks from one event into another; on kong-pdk's
bridge each phase handler binds afresh at its start.

Lines go to stderr, the stream the server always wrote to: Kong reads a plugin server's
stdout and stderr and writes every line into its own error log at INFO
(kong/runloop/plugin_servers/process.lua), and ``--dump`` keeps stdout for its JSON.
Only ids and messages are logged: no header value other than the validated ids, no
token, key or code.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from edge_plugins.trace.request_id import DEFAULT_HEADER, DEFAULT_PATTERN
from edge_plugins.trace.traceparent import InvalidTraceparent, parse_traceparent

TRACEPARENT_HEADER = "traceparent"
_SAFE_REQUEST_ID = re.compile(DEFAULT_PATTERN)


@dataclass(frozen=True, slots=True)
class EventIds:
    """The ids of the event being handled; ``None`` for what the plugin does not know."""

    request_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


# The ids, or how to read them when a line is first logged (bind_headers).
_current: contextvars.ContextVar[EventIds | Callable[[], EventIds] | None] = contextvars.ContextVar(
    "edge_plugins_event_ids", default=None
)


def bind_event(ids: EventIds) -> None:
    """Name the event this context handles in every line logged from here on."""
    _current.set(ids)


def bind_headers(
    headers: Mapping[str, Sequence[str] | str], request_id_header: str = DEFAULT_HEADER
) -> None:
    """:func:`bind_event` with :func:`ids_from_headers`, read when a line is first logged:
    most events log nothing, and a request should not pay for parsing ids no line shows."""
    _current.set(lambda: ids_from_headers(headers, request_id_header))


def current_event() -> EventIds | None:
    ids = _current.get()
    if callable(ids):
        ids = ids()
        _current.set(ids)
    return ids


def _single(headers: Mapping[str, Sequence[str] | str], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, str):
        return value
    if value is not None and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return None  # absent or ambiguous


def safe_request_id(value: object) -> str | None:
    """``value`` when it matches edge-trace's default request-id pattern (what edge-trace
    accepts or generates), else ``None``: a client's arbitrary header value never reaches
    a log line."""
    if isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value):
        return value
    return None


def ids_from_headers(
    headers: Mapping[str, Sequence[str] | str], request_id_header: str = DEFAULT_HEADER
) -> EventIds:
    """The ids in request headers as ``kong.request.get_headers()`` answers them (lower-case
    names); the request id through :func:`safe_request_id`. The span is
    ``traceparent``'s parent id: the gateway span edge-trace made."""
    request_id = safe_request_id(_single(headers, request_id_header.lower()))
    trace_id = span_id = None
    traceparent = _single(headers, TRACEPARENT_HEADER)
    if traceparent is not None:
        try:
            parsed = parse_traceparent(traceparent)
        except InvalidTraceparent:
            pass
        else:
            trace_id, span_id = parsed.trace_id, parsed.parent_id
    return EventIds(request_id, trace_id, span_id)


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}
_JSON_SCALARS = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (the backend's key names), with the event's ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        ids = current_event()
        if ids is not None:
            if ids.request_id:
                entry["request_id"] = ids.request_id
            if ids.trace_id:
                entry["trace_id"] = ids.trace_id
            if ids.span_id:
                entry["span_id"] = ids.span_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in entry:
                entry[key] = value if isinstance(value, _JSON_SCALARS) else repr(value)
        if record.exc_info:
            exc_type = record.exc_info[0]
            if exc_type is not None:
                entry["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(service: str, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Route the root logger to ``stream`` (stderr) as JSON lines for ``service``."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


# kong_pdk/logger.py's level names (its ``log`` takes the name it prints).
_KONG_PDK_LEVELS = {
    "VERB": logging.DEBUG,
    "DEBG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


def route_kong_pdk_logger() -> None:
    """Send kong-pdk's own log lines through :mod:`logging` (logger ``kong_pdk``), so they
    come out as the JSON lines of :func:`configure` too.

    kong_pdk/logger.py writes plain text (``INFO - [time] message``) to stdout and tracebacks
    to stderr on its own; the lines of a server run with ``--kong-pdk-bridge`` would
    otherwise have two shapes. Its level filter (``set_level``, from ``-v``) still applies:
    it replaces the methods this patch leaves alone.
    """
    from kong_pdk.logger import Logger

    def log(self: Logger, level: str, fmt: str, *args: object, **_: object) -> None:
        level_number = _KONG_PDK_LEVELS.get(level, logging.INFO)
        logging.getLogger("kong_pdk").log(level_number, "%s", _kong_pdk_message(fmt, args))

    def exception(self: Logger, fmt: str, *args: object, **_: object) -> None:
        logging.getLogger("kong_pdk").error("%s", _kong_pdk_message(fmt, args), exc_info=True)

    Logger.log = log
    Logger.exception = exception


def _kong_pdk_message(fmt: str, args: tuple[object, ...]) -> str:
    """kong-pdk's ``fmt % args``; a format that does not fit its arguments keeps both."""
    try:
        return fmt % args if args else fmt
    except (TypeError, ValueError):
        return f"{fmt} {args!r}"
