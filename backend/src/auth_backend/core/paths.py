"""Paths the gateway and Django would read differently are refused before URL resolution.

The edge routes on the path as Kong normalises it, where ``%2F`` and ``%5C`` stay encoded
(kong/tools/uri.lua ``normalize`` decodes unreserved characters only); Django resolves
the decoded ``PATH_INFO`` (PEP 3333), where they are a ``/`` and a ``\\``. So
``/api/auth/login%2F2fa`` is routed and limited as ``login`` and would run ``login/2fa``.
edge-jwt refuses such paths on every route; this middleware refuses them here too, for the
requests that reach the backend without edge-jwt (Kong proxies without a plugin whose
server is down, docs/architecture.md). Only on the public listener, the one the gateway
reaches: the internal API's callers are services, whose path parameters (an address in
``check-email/<email>``) may hold an encoded ``/``. The raw request target is gunicorn's
``RAW_URI``; a server that does not pass one (Django's runserver, the test client) is not
checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from auth_backend.core.errors import error_response
from auth_backend.core.listeners import PUBLIC, listener_of

RAW_TARGET_KEYS = ("RAW_URI", "REQUEST_URI")
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c)", re.IGNORECASE)


def raw_path(meta: dict[str, object]) -> str | None:
    """The request target's path as the client sent it (no query), when the server says."""
    for key in RAW_TARGET_KEYS:
        target = meta.get(key)
        if isinstance(target, str) and target:
            return target.split("?", 1)[0]
    return None


def has_encoded_separator(path: str) -> bool:
    """Whether ``path`` holds a percent-encoded ``/`` or ``\\`` (any case)."""
    return _ENCODED_SEPARATOR.search(path) is not None


class EncodedSeparatorMiddleware:
    """400 ``encoded_path_separator`` for a raw path with ``%2F`` or ``%5C`` on the public
    listener."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = raw_path(request.META)
        if path is not None and has_encoded_separator(path) and listener_of(request.META) == PUBLIC:
            return error_response(
                request,
                400,
                "encoded_path_separator",
                "The path may not contain an encoded '/' or '\\'.",
            )
        return self.get_response(request)
