"""JSON log lines (auth_backend.core.logs)."""

from __future__ import annotations

import json
import logging
import sys

from auth_backend.core.logs import GunicornJsonFormatter, JsonFormatter
from auth_backend.core.request_id import current_request_id


def _record(exc_info=None):
    return logging.LogRecord(
        "auth_backend.test", logging.WARNING, __file__, 1, "hello %s", ("world",), exc_info
    )


def test_one_json_object_per_line_with_service_and_request_id():
    formatter = JsonFormatter(service="auth-backend")
    record = _record()
    record.user_count = 3  # extra=...
    token = current_request_id.set("req-1")
    try:
        line = formatter.format(record)
    finally:
        current_request_id.reset(token)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "auth_backend.test"
    assert entry["service"] == "auth-backend"
    assert entry["request_id"] == "req-1"
    assert entry["user_count"] == 3
    assert entry["ts"].endswith("Z")


def test_exceptions_are_logged_with_their_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(exc_info=sys.exc_info())

    entry = json.loads(JsonFormatter().format(record))

    assert entry["exc_type"] == "builtins.ValueError"
    assert "Traceback" in entry["exc"] and "boom" in entry["exc"]


def test_gunicorn_access_records_become_fields_without_headers():
    atoms = {
        "h": "10.0.0.5",
        "m": "GET",
        "U": "/api/auth/health/live/",
        "q": "",
        "H": "HTTP/1.1",
        "s": "200",
        "B": 15,
        "M": 3,
        "a": "kong/3.9",
        "{x-request-id}o": "req-9",
        "{authorization}i": "Bearer secret-token",
        "{http_authorization}e": "Bearer secret-token",
    }
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(h)s", None, None)
    record.args = atoms  # what gunicorn's logger.info(fmt, atoms) produces

    entry = json.loads(GunicornJsonFormatter(service="auth-backend").format(record))

    assert entry["message"] == "GET /api/auth/health/live/ 200"
    assert entry["method"] == "GET"
    assert entry["status"] == 200
    assert entry["duration_ms"] == 3
    assert entry["request_id"] == "req-9"
    assert "secret-token" not in json.dumps(entry)
