"""The backend's single error shape, and everything that produces it.

Every error response of this service -- DRF views, Django's 400/403/404/500 handlers, and any
error page Django builds by itself (e.g. with DEBUG on) -- has ``Content-Type:
application/json`` and this body::

    {
      "error": {
        "code": "not_found",
        "message": "Not found.",
        "details": {}
      },
      "request_id": "4f1c0b6e9d0a4c55a3d1f0c6f1e2d3c4"
    }

``error.code``
    Stable, machine-readable ``snake_case`` identifier; clients branch on this, never on the
    message. Common values: ``bad_request``, ``parse_error``, ``invalid``,
    ``not_authenticated``, ``authentication_failed``, ``permission_denied``, ``not_found``,
    ``method_not_allowed``, ``not_acceptable``, ``unsupported_media_type``, ``throttled``,
    ``server_error``, ``service_unavailable``. For DRF exceptions it is the exception's
    ``default_code`` (or the ``code=`` it was raised with).
``error.message``
    Human-readable English sentence, safe to show to an end user. It is written by us
    (an exception class's client-facing ``detail``), never an exception's text or a
    traceback: unexpected errors are logged server-side and answered with a generic 500.
``error.details``
    Always an object, ``{}`` when there is nothing to add. Validation errors (code
    ``invalid``) put per-field messages under ``"fields"``, with errors not tied to a field
    under ``"fields"["non_field_errors"]``::

        "details": {"fields": {"email": ["Enter a valid email address."]}}

    Other errors may add documented keys (e.g. the internal readiness report: ``{"checks":
    {"redis": {"status": "unavailable", "latency_ms": 1.2}, ...}}``; throttling:
    ``{"retry_after": 30}``).
``request_id``
    The request's id (``X-Request-ID`` / ``X-Kong-Request-Id`` if sent, else generated), also
    returned in the ``X-Request-ID`` response header and present in every log line for the
    request.

Headers that belong to an error are kept: ``WWW-Authenticate`` on 401, ``Retry-After`` on
429, ``Allow`` on 405.
"""

from __future__ import annotations

import json
import logging
import math
import re
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import set_rollback

from auth_backend.core.parsers import body_too_large
from auth_backend.core.request_id import get_request_id

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
# The API's 401 challenges (``WWW-Authenticate``, RFC 6750 §3).
BEARER_CHALLENGE = 'Bearer realm="api"'
INVALID_TOKEN_CHALLENGE = f'{BEARER_CHALLENGE}, error="invalid_token"'
_COMPACT_SEPARATORS = (",", ":")  # same bytes as DRF's JSONRenderer

# Fallback code/message per status, for errors that carry nothing more specific.
_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    406: ("not_acceptable", "Could not satisfy the request Accept header."),
    413: ("request_too_large", "The request is too large."),
    415: ("unsupported_media_type", "Unsupported media type in request."),
    429: ("throttled", "Request was throttled."),
    500: ("server_error", "A server error occurred."),
    502: ("bad_gateway", "An upstream service returned an invalid response."),
    503: ("service_unavailable", "Service temporarily unavailable, try again later."),
    504: ("gateway_timeout", "An upstream service did not respond in time."),
}


class ServiceUnavailable(exceptions.APIException):
    """A dependency this request needs is down (HTTP 503)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable, try again later."
    default_code = "service_unavailable"

    def __init__(self, detail: Any = None, code: Any = None, details: dict | None = None):
        super().__init__(detail, code)
        self.details = details or {}


def status_error(status_code: int) -> tuple[str, str]:
    """Generic ``(code, message)`` for an HTTP error status."""
    if status_code in _STATUS_ERRORS:
        return _STATUS_ERRORS[status_code]
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return (
            ("server_error", "A server error occurred.")
            if status_code >= 500
            else ("bad_request", "The request could not be understood.")
        )
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_"), f"{phrase}."


def error_body(
    request: Any, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The documented error body (see the module docstring)."""
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "request_id": get_request_id(request),
    }


def error_response(
    request: HttpRequest,
    status_code: int,
    code: str | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
) -> JsonResponse:
    """A plain Django ``JsonResponse`` in the error shape (outside DRF views)."""
    default_code, default_message = status_error(status_code)
    return JsonResponse(
        error_body(request, code or default_code, message or default_message, details),
        status=status_code,
        json_dumps_params={"separators": _COMPACT_SEPARATORS},
    )


# --- DRF ------------------------------------------------------------------------------------


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: render known exceptions in the error shape.

    Handles DRF ``APIException``s, Django's ``Http404``, ``PermissionDenied`` and
    ``ValidationError`` (so services may raise Django's ``ValidationError``). A database that
    cannot be reached (stopped, restarting, over its connect timeout) is a dependency down,
    not a bug: 503, as the readiness check says. Anything else is a bug: return ``None`` so
    DRF re-raises it, Django logs it with its traceback, and the project's ``handler500``
    answers a generic 500.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable", exc_info=exc)  # DRF logs no handled exception
        exc = ServiceUnavailable()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()  # Http404's text may name internals; never echo it
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, RequestDataTooBig):
        # DRF reads the body through HttpRequest.body, which enforces the size: a client
        # error, answered like the JSON parser's own limits (core/parsers.py), not logged.
        exc = body_too_large()

    if not isinstance(exc, exceptions.APIException):
        return None

    headers: dict[str, str] = {}
    details: dict[str, Any] = dict(getattr(exc, "details", None) or {})
    # Neither is declared on APIException: ``auth_header`` is a class attribute of some
    # exceptions or set by ``APIView.handle_exception``; ``wait`` is ``Throttled``'s.
    auth_header = getattr(exc, "auth_header", None)
    if isinstance(auth_header, str) and auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait_seconds = getattr(exc, "wait", None)
    if isinstance(wait_seconds, int | float) and wait_seconds:
        wait = math.ceil(wait_seconds)
        headers["Retry-After"] = str(wait)
        details.setdefault("retry_after", wait)

    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
        message = "Invalid input."
        details.setdefault("fields", as_serializer_error(exc))
    else:
        code, message = _api_exception_code_and_message(exc)

    set_rollback()
    request = context.get("request")
    return Response(
        error_body(request, code, message, details), status=exc.status_code, headers=headers
    )


def _api_exception_code_and_message(exc: exceptions.APIException) -> tuple[str, str]:
    detail = exc.detail
    if isinstance(detail, exceptions.ErrorDetail):
        return str(detail.code or exc.default_code), str(detail)
    # A list/dict detail on a non-validation exception: keep the class's code and message.
    return str(exc.default_code), str(exc.default_detail)


# --- Django error handlers (handler400/403/404/500 in the root URLconf) ---------------------


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(request, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """``CSRF_FAILURE_VIEW``, for when a view ever opts into CSRF protection."""
    return error_response(request, 403, "csrf_failed", "CSRF verification failed.")


# --- Last line of defence -------------------------------------------------------------------


class JsonErrorMiddleware:
    """Rewrite any non-JSON error response into the error shape.

    Django builds some error responses without our handlers: its technical 404/500 pages when
    DEBUG is on (HTML or plain text, including the traceback and exception text), ``Http
    ResponseNotAllowed`` from ``require_http_methods``, and so on. This middleware turns every
    response with status >= 400 whose ``Content-Type`` is not JSON into the documented shape
    with the generic code/message for its status, keeping its other headers (``Allow``,
    ``WWW-Authenticate``, ``Retry-After``). Place it right after ``RequestIdMiddleware``.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response):
            return response
        code, message = status_error(response.status_code)
        replacement = HttpResponse(
            json.dumps(error_body(request, code, message), separators=_COMPACT_SEPARATORS),
            status=response.status_code,
            content_type=JSON_CONTENT_TYPE,
        )
        for header, value in response.items():
            if header.lower() not in {"content-type", "content-length", "content-disposition"}:
                replacement[header] = value
        replacement.cookies = response.cookies
        # Django marks responses it has already logged; keep the mark to avoid a duplicate.
        if getattr(response, "_has_been_logged", False):
            replacement._has_been_logged = True  # type: ignore[attr-defined]  # private to Django
        return replacement


def _is_json(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return content_type == JSON_CONTENT_TYPE or content_type.endswith("+json")
