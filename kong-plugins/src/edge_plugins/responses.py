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

_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    407: "Proxy authentication required",
    408: "Request timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length required",
    412: "Precondition failed",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    417: "Expectation failed",
    418: "I'm a teapot",
    421: "Misdirected request",
    422: "Unprocessable entity",
    423: "Locked",
    424: "Failed dependency",
    425: "Too early",
    426: "Upgrade required",
    428: "Precondition required",
    429: "Too many requests",
    431: "Request header fields too large",
    451: "Unavailable for legal reasons",
    494: "Request header or cookie too large",
    500: "An unexpected error occurred",
    501: "Not implemented",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
    505: "HTTP version not supported",
    506: "Variant also negotiates",
    507: "Insufficient storage",
    508: "Loop detected",
    510: "Not extended",
    511: "Network authentication required",
}


def default_message(status: int) -> str:
    """What ``kong.response.error(status)`` says when given no message."""
    return _MESSAGES.get(status, f"The upstream server responded with {status}")


# --- edge-jwt -------------------------------------------------------------------------------

# Keyed by RFC 6750 error code (``None``: the request carried no token).
BEARER_MESSAGES: dict[str | None, str] = {
    None: "Unauthorized",
    "invalid_request": "Invalid request",
    "invalid_token": "Invalid access token",
    "insufficient_scope": "Insufficient scope",
}
AUTH_UNAVAILABLE_MESSAGE = "Authentication is temporarily unavailable"
TOO_MANY_HEADERS_MESSAGE = _MESSAGES[431]


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
