"""What the plugins answer a rejected request with: every body and message in one place.

* Kong's default error messages. ``kong.response.error(status)`` fills these in itself
  (kong/pdk/response.lua ``get_http_error_message``). A plugin that also sends headers
  cannot leave the message out: a ``None`` before the headers cuts them off on the way to
  Kong (kong/runloop/plugin_servers/rpc/mp_rpc.lua calls the PDK with ``unpack(args)``),
  so it sends Kong's own text instead and the client sees the same body.
* edge-jwt's messages for ``kong.response.error``, which renders them as Kong's JSON error
  with the request id: fixed per RFC 6750 error code (nothing says *why* a token failed
  beyond that code; the reason goes to logs and metrics), and the 503 when no key can
  decide.
* edge-rate-limit's 429 body: a problem-details object (RFC 9457 members, sent as
  ``application/json``) of the type the RateLimit draft registers, ``quota-exceeded``,
  naming the violated policies with the same names as the ``RateLimit-Policy`` header.
  Its 503 (Redis down under ``on_store_failure: closed``) is Kong's own error body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from edge_plugins.trace.request_id import is_well_formed

# Only the statuses the plugins answer with Kong's default text: edge-rate-limit's 429
# (its fallback when the problem-details answer fails) and 503, edge-jwt's 431.
# kong-plugins/tests/test_responses.py holds each to the harness's copy of Kong's table.
KONG_MESSAGES = {
    429: "Too many requests",
    431: "Request header fields too large",
    503: "The upstream server is currently unavailable",
}


def default_message(status: int) -> str:
    """What ``kong.response.error(status)`` says when given no message.

    A status outside :data:`KONG_MESSAGES` gets Kong's text for a status it does not name;
    only a non-default ``error_code`` of edge-rate-limit whose own answer failed meets it.
    """
    return KONG_MESSAGES.get(status, f"The upstream server responded with {status}")


# --- edge-jwt -------------------------------------------------------------------------------

# Keyed by RFC 6750 error code (``None``: the request carried no token).
BEARER_MESSAGES: dict[str | None, str] = {
    None: "Unauthorized",
    "invalid_request": "Invalid request",
    "invalid_token": "Invalid access token",
    "insufficient_scope": "Insufficient scope",
}
AUTH_UNAVAILABLE_MESSAGE = "Authentication is temporarily unavailable"
TOO_MANY_HEADERS_MESSAGE = KONG_MESSAGES[431]
# 400 for a path with an encoded "/" or "\\", which the edge and the backend would read
# differently (jwt.route_guard). No backslash or quote in it: Kong writes the message into
# its JSON error template unescaped (kong/tools/http.lua get_error_template).
ENCODED_SEPARATOR_MESSAGE = "Bad request: encoded slash or backslash in the path"


# --- edge-rate-limit ------------------------------------------------------------------------

QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


def quota_exceeded_body(status: int, message: str, violated: Sequence[str]) -> dict[str, Any]:
    """The 429 problem details; ``message`` repeats ``detail`` for Kong-style clients."""
    return {
        "type": QUOTA_EXCEEDED_TYPE,
        "title": _phrase(status),
        "status": status,
        "detail": message,
        "message": message,
        "violated-policies": list(violated),
    }


def json_with_request_id(body: Mapping[str, Any], request_id: str | None) -> str:
    """``body`` as JSON, naming ``request_id`` only when it is well formed.

    The id is the one edge-trace set or, without edge-trace on the route, the client's raw
    header. Only an id edge-trace's default rule accepts is echoed: anything else (bytes
    that are not UTF-8, an injected line, an oversized value) would reach the client and
    its logs as sent.
    """
    out = dict(body)
    if isinstance(request_id, str) and is_well_formed(request_id):
        out["request_id"] = request_id
    return json.dumps(out)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Request rejected"
