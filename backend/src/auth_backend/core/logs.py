"""Structured logging: one JSON object per line on stdout.

Every record carries::

    {"ts": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "auth_backend.health",
     "message": "...", "service": "auth-backend", "request_id": "…"}

plus ``exc_type``/``exc`` (the formatted traceback) when the record has exception info, and
any JSON-friendly ``extra={...}`` fields. ``request_id`` is present while a request is being
handled (see :mod:`auth_backend.core.request_id`). With tracing on
(:mod:`auth_backend.core.tracing`), ``trace_id`` (32 hex digits) and ``span_id`` (16) name
the span current when the line was written — the request's, or a database/custom span
inside it — so a log line leads to its trace and back; they are absent outside any span.
Tracebacks go to the logs only, never to clients.

:class:`GunicornJsonFormatter` additionally turns gunicorn access records into fields
(``method``, ``path``, ``status``, ``duration_ms``, …) instead of an Apache-style line, with
the ``trace_id`` of the request's ``traceparent`` header when it has a valid one.

No Django imports: gunicorn's master process loads this before Django is configured. The
OpenTelemetry API it reads the current span from is small and needs no configuration.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from auth_backend.core.request_id import current_request_id

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}
# ``extra`` keys that Django adds but that are not useful (or safe) to serialise.
_SKIPPED_EXTRAS = frozenset({"request", "server_time"})
_JSON_SCALARS = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    def __init__(self, *args: Any, service: str = "auth-backend", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
        # Django logs 4xx/5xx responses (logger "django.request") after the middleware has
        # finished, but passes the request along.
        request_id = current_request_id.get() or getattr(
            getattr(record, "request", None), "request_id", None
        )
        if request_id:
            entry["request_id"] = request_id
        span_context = _span_context(record)
        if span_context is not None:
            entry["trace_id"] = trace.format_trace_id(span_context.trace_id)
            entry["span_id"] = trace.format_span_id(span_context.span_id)
        entry.update(self.extra_fields(record))
        if record.exc_info:
            exc_type = record.exc_info[0]
            if exc_type is not None:
                entry["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        fields = {}
        for key, value in vars(record).items():
            if key in _RECORD_ATTRS or key in _SKIPPED_EXTRAS or key.startswith("_"):
                continue
            fields[key] = value if isinstance(value, _JSON_SCALARS) else repr(value)
        return fields


def _span_context(record: logging.LogRecord) -> trace.SpanContext | None:
    """The span the record was written in: the current one, else its request's server span.

    Django logs 4xx/5xx responses ("django.request") after the tracing middleware has ended
    the request's span; the tracing module leaves that span's context on the request.
    """
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        return span_context
    request = getattr(record, "request", None)
    server_span_context = getattr(request, "otel_span_context", None)
    if isinstance(server_span_context, trace.SpanContext) and server_span_context.is_valid:
        return server_span_context
    return None


# gunicorn access-log atoms worth keeping (never all of them: they include every request
# header and the WSGI environ, e.g. Authorization).
_ACCESS_ATOMS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "query": "q",
    "protocol": "H",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "user_agent": "a",
    "request_id": "{x-request-id}o",
}
# W3C traceparent of the request (what the gateway sent): its trace id is the request's, also
# when the backend continued that trace (access lines are written after the request's span).
_TRACEPARENT_ATOM = "{traceparent}i"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE_ID = "0" * 32


class GunicornJsonFormatter(JsonFormatter):
    """JSON formatter for gunicorn's own loggers (``gunicorn.error``, ``gunicorn.access``)."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args
        if record.name == "gunicorn.access" and isinstance(atoms, dict):
            record = logging.makeLogRecord(vars(record))  # other handlers keep the original
            for field, atom in _ACCESS_ATOMS.items():
                value = atoms.get(atom)
                if value not in (None, "-"):
                    setattr(record, field, _to_int(value) if field == "status" else value)
            trace_id = _trace_id_of(atoms.get(_TRACEPARENT_ATOM))
            if trace_id:
                record.trace_id = trace_id
            record.msg = "{} {} {}".format(atoms.get("m"), atoms.get("U"), atoms.get("s"))
            record.args = None
        return super().format(record)


def _trace_id_of(traceparent: Any) -> str | None:
    if not isinstance(traceparent, str):
        return None
    value = traceparent.strip()
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match.group(1) == _ZERO_TRACE_ID or value.startswith("ff"):
        return None  # version ff is invalid
    return match.group(1)


def _to_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
