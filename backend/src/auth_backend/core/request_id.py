"""Request ids: one id per request, shared by logs, error bodies and the response header.

The id is taken from the first *acceptable* value of ``X-Request-ID`` then ``X-Kong-Request-Id``
(the edge sets these; Kong always sets the latter), otherwise a new one is generated. A value is
acceptable when it is 1-128 characters from ``[A-Za-z0-9._:-]``, which covers UUIDs, Kong's hex
ids and W3C trace ids while keeping header-injected junk out of logs. The chosen id is sent back
as ``X-Request-ID`` on every response.

This module imports nothing from Django so the log formatter (and gunicorn's master process,
which uses it before Django is set up) can read the current id.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
# Incoming headers, in order of preference, as Django META keys.
INCOMING_META_KEYS = ("HTTP_X_REQUEST_ID", "HTTP_X_KONG_REQUEST_ID")

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# The id of the request being handled by this thread/task, for log records.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from_meta(meta: dict[str, Any]) -> str:
    """Pick the request id from a WSGI/Django ``META`` mapping, or generate one."""
    for key in INCOMING_META_KEYS:
        value = meta.get(key)
        if isinstance(value, str):
            value = value.strip()
            if _VALID_REQUEST_ID.fullmatch(value):
                return value
    return new_request_id()


def get_request_id(request: Any) -> str:
    """The id assigned to ``request`` (Django or DRF request).

    Falls back to reading the headers when the middleware has not run, e.g. for an error raised
    by a middleware placed before it.
    """
    request_id = getattr(request, "request_id", None)
    if isinstance(request_id, str) and request_id:
        return request_id
    request_id = request_id_from_meta(getattr(request, "META", {}) or {})
    try:
        request.request_id = request_id
    except AttributeError:  # pragma: no cover - exotic request objects
        pass
    return request_id


class RequestIdMiddleware:
    """Assign ``request.request_id``, expose it to logging, echo it as ``X-Request-ID``.

    Must be the first (outermost) entry of ``MIDDLEWARE`` so every other layer, and every
    error response, sees the same id.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request_id = get_request_id(request)
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
