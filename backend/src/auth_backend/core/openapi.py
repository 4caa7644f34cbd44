"""OpenAPI (drf-spectacular) refinements shared by every app's views.

What this adds to the generated schema (wired in ``settings.SPECTACULAR_SETTINGS``):

* **Error component** -- ``#/components/schemas/Error`` is the one error shape of
  :mod:`auth_backend.core.errors`. Every 4xx/5xx response documented without a body gets it,
  every operation gets a ``default`` response with it (unexpected errors), operations with a
  request body get a ``400`` and protected operations a ``401`` (with ``WWW-Authenticate``)
  unless they document their own. The 401/403 of operations that need the access token
  may come from the gateway instead, in Kong's shape (``GatewayError``: ``message``,
  ``request_id``). Views describe specific errors with :func:`error_response`::

      @extend_schema(responses={200: TwoFactorSetupOutputSerializer,
                                409: error_response("2FA is already on.",
                                                    "two_factor_already_enabled")})

* **Security schemes** -- views authenticated by the gateway's identity assertion require
  ``AccessToken`` (the client's bearer token, checked by the gateway); internal views require
  ``InternalApiKey``. The ``X-Identity-Assertion`` header the gateway sets is no part of the
  public contract: the gateway strips any client-supplied value, so the schema never offers
  it to clients as a header or security scheme.
* **String inputs** -- request fields say what the serializers enforce: a non-blank field
  has ``minLength`` 1 and, when the serializer trims whitespace, a pattern that needs a
  non-whitespace character; no string may hold NUL (DRF refuses it in every ``CharField``).
* **Tags** -- operations are grouped by area (:data:`TAG_BY_SEGMENT`) unless a view sets
  ``tags=`` itself.
* **Paths** -- the public schema holds ``/api/auth/`` only (never ``/internal/`` or
  ``/admin/``); the internal schema (``GET /internal/auth/schema``, API key required) holds
  ``/internal/auth/`` only. Routes that answer with and without the trailing slash appear
  once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

PUBLIC_PREFIX = "/api/auth/"
INTERNAL_PREFIX = "/internal/auth/"

ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The error shape of every error response of this service.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable machine-readable snake_case code; branch on this.",
                    "example": "invalid",
                },
                "message": {
                    "type": "string",
                    "description": "Human-readable English sentence, safe to show.",
                    "example": "Invalid input.",
                },
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Always an object. Validation errors (code `invalid`) put "
                    "per-field messages under `fields`; other codes document "
                    "their own keys.",
                    "example": {"fields": {"email": ["Enter a valid email address."]}},
                },
            },
            "required": ["code", "message", "details"],
        },
        "request_id": {
            "type": "string",
            "description": "The request's id, also in the `X-Request-ID` response header.",
            "example": "4f1c0b6e9d0a4c55a3d1f0c6f1e2d3c4",
        },
    },
    "required": ["error", "request_id"],
}

GATEWAY_ERROR_COMPONENT = "GatewayError"
GATEWAY_ERROR_REF = {"$ref": f"#/components/schemas/{GATEWAY_ERROR_COMPONENT}"}
GATEWAY_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Kong's error shape, for errors the gateway answers itself (no or an "
    "invalid access token: 401; a token without the route's role or scope: 403).",
    "properties": {
        "message": {"type": "string", "example": "Unauthorized"},
        "request_id": {"type": "string", "example": "9f39d020b01ad9233a5d798404139247"},
    },
    "required": ["message", "request_id"],
}

_JSON = "application/json"
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'RFC 6750 challenge: `Bearer realm="…"`, plus '
        '`error="invalid_token"` for rejected credentials.',
        "schema": {"type": "string"},
    }
}

CLIENT_SCHEME_NAME = "AccessToken"
ACCESS_TOKEN_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The access token from `login` / `token/refresh`, sent to the gateway as "
    "`Authorization: Bearer <token>`. The gateway validates it and forwards the caller's "
    "identity to this service in a signed header of its own (docs/identity-assertion.md); "
    "clients never send that header, and the gateway strips it when they do.",
}
INTERNAL_API_KEY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "Per-service API key (`Authorization: Bearer <key>`); the service stores "
    "only its SHA-256. Internal network only, never through the gateway.",
}

# First path segment after /api/auth/ -> tag, for views that do not set tags themselves.
TAG_BY_SEGMENT: dict[str, str] = {
    "register": "accounts",
    "verify-email": "accounts",
    "resend-verification": "accounts",
    "password": "accounts",
    "login": "tokens",
    "google": "tokens",
    "token": "tokens",
    "logout": "tokens",
    ".well-known": "tokens",
    "profile": "profile",
    "2fa": "2fa",
    "seller": "seller",
    "health": "health",
    "schema": "schema",
}
INTERNAL_TAG = "internal"

# Settings of the internal schema view (SpectacularAPIView(custom_settings=...)).
INTERNAL_SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "Auth backend internal API",
    "DESCRIPTION": "Service-to-service endpoints under `/internal/auth/`. Reachable on the "
    "internal network only (the gateway never routes them); every call needs "
    "a per-service API key.",
    "PREPROCESSING_HOOKS": ["auth_backend.core.openapi.internal_endpoints"],
    "TAGS": [
        {
            "name": INTERNAL_TAG,
            "description": "Lookups and token introspection for trusted services.",
        }
    ],
}


def error_response(
    description: str, *codes: str, details: Mapping[str, dict[str, Any]] | None = None
) -> OpenApiResponse:
    """A documented error response in the project's shape, with one example per ``code``.

    ``details`` maps a code to the ``error.details`` of its example.
    """
    if codes:
        description = f"{description} Codes: {', '.join(f'`{code}`' for code in codes)}."
    examples = [
        OpenApiExample(
            code,
            value={
                "error": {
                    "code": code,
                    "message": "…",
                    "details": dict((details or {}).get(code, {})),
                },
                "request_id": "4f1c0b6e9d0a4c55a3d1f0c6f1e2d3c4",
            },
            response_only=True,
        )
        for code in codes
    ]
    return OpenApiResponse(response=dict(ERROR_REF), description=description, examples=examples)


# --- security schemes ------------------------------------------------------------------------


class GatewayIdentityScheme(OpenApiAuthenticationExtension):
    """Protected views need the client's access token (the gateway turns it into the
    assertion this service checks; the assertion is the gateway's, not the client's)."""

    target_class = "auth_backend.identity.authentication.GatewayAssertionAuthentication"
    name = CLIENT_SCHEME_NAME

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return ACCESS_TOKEN_SCHEME


class InternalApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "auth_backend.internal.authentication.InternalApiKeyAuthentication"
    name = "InternalApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return INTERNAL_API_KEY_SCHEME


# --- tags ------------------------------------------------------------------------------------


class AutoSchema(SpectacularAutoSchema):
    """The project's schema class (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``)."""

    def _map_basic_serializer(self, serializer: Any, direction: str) -> Any:
        schema = super()._map_basic_serializer(serializer, direction)
        # A request body that refuses fields it does not know says so.
        if direction == "request" and getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(
        self, field: Any, direction: str, bypass_extensions: bool = False
    ) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(schema, dict):
            _constrain_string_input(field, schema)
        return schema

    def get_tags(self) -> list[str]:
        if self.path.startswith(INTERNAL_PREFIX):
            return [INTERNAL_TAG]
        if self.path.startswith(PUBLIC_PREFIX):
            segment = self.path[len(PUBLIC_PREFIX) :].split("/", 1)[0]
            if segment:
                return [TAG_BY_SEGMENT.get(segment, segment)]
        return super().get_tags()


# Patterns (Python/ECMA regex, searched) of request strings DRF's CharField accepts: no NUL
# (its ProhibitNullCharactersValidator); non-blank fields that trim whitespace need one
# character str.strip() keeps.
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_EMPTY_PATTERN = "^[^\\u0000]+$"
NOT_BLANK_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


# What Django's URLValidator accepts, narrowed to https and plain DNS names of at most
# three labels (so within its 253-character host limit): a URL the schema allows is never
# refused; a few it refuses (e.g. upper case, longer names) are accepted.
HTTPS_URL_PATTERN = (
    "^https://[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)?"
    "\\.[a-z]{2,63}(?::[0-9]{1,5})?(?:/[!-~]*)?$"
)


def _constrain_string_input(field: Any, schema: dict[str, Any]) -> None:
    """Write down what a request ``CharField`` really accepts (see the module docstring).

    Fields with their own ``pattern``, ``enum`` or ``format`` (email, uri, uuid, ...) keep
    it: those already exclude blank and NUL input.
    """
    if not isinstance(field, serializers.CharField) or schema.get("type") != "string":
        return
    if {"pattern", "enum", "format"} & schema.keys():
        return
    if field.allow_blank:
        # drf-spectacular offers blank as a oneOf branch of its own: this one is not blank.
        schema["pattern"] = NOT_EMPTY_PATTERN
        return
    min_length = max(field.min_length or 0, 1)
    schema["minLength"] = max(schema.get("minLength", 0), 1)
    if not field.trim_whitespace:
        schema["pattern"] = NO_NUL_PATTERN
    elif min_length == 1:
        schema["pattern"] = NOT_BLANK_PATTERN
    else:
        # min_length counts after trimming: two kept characters at least that far apart.
        kept = "[^\\s\\u0000]"
        schema["pattern"] = f"^[^\\u0000]*{kept}[^\\u0000]{{{min_length - 2},}}{kept}[^\\u0000]*$"


# --- preprocessing hooks: which paths a schema shows -----------------------------------------

Endpoint = tuple[str, str, str, Any]  # (path, path_regex, method, callback)
_REGEX_ESCAPE = re.compile(r"\\(.)")


def public_endpoints(endpoints: Iterable[Endpoint], **kwargs: Any) -> list[Endpoint]:
    """``/api/auth/`` only: never ``/internal/``, ``/admin/`` or anything else."""
    return _endpoints_under(PUBLIC_PREFIX, endpoints)


def internal_endpoints(endpoints: Iterable[Endpoint], **kwargs: Any) -> list[Endpoint]:
    return _endpoints_under(INTERNAL_PREFIX, endpoints)


def _endpoints_under(prefix: str, endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Endpoints under ``prefix`` with readable paths, each route once.

    Paths of ``core.urls.route`` patterns come out of the regex with escapes
    (``.well\\-known``) and a trailing slash (from ``/?``); both are tidied. A route declared
    twice, with and without the slash, keeps the slashed form; file-like last segments
    (``jwks.json``) are shown without it.
    """
    selected: dict[tuple[str, str], Endpoint] = {}
    for path, path_regex, method, callback in endpoints:
        path = _REGEX_ESCAPE.sub(r"\1", path)
        if not path.startswith(prefix):
            continue
        stem = path.rstrip("/")
        if "." in stem.rsplit("/", 1)[-1]:
            path = stem
        elif not path.endswith("/"):
            path = f"{path}/"
        selected.setdefault((path, method), (path, path_regex, method, callback))
    return list(selected.values())


# --- postprocessing hook: the error shape everywhere -----------------------------------------


def postprocess_error_responses(
    result: dict[str, Any], generator: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Give every operation's error responses the ``Error`` body (see the module docstring)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = copy.deepcopy(ERROR_SCHEMA)
    if any(
        _requires_credentials(operation)
        for operations in result.get("paths", {}).values()
        for operation in operations.values()
        if isinstance(operation, dict)
    ):
        schemas[GATEWAY_ERROR_COMPONENT] = copy.deepcopy(GATEWAY_ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _add_error_responses(operation)
    return result


def _requires_credentials(operation: dict[str, Any]) -> bool:
    security: list[dict[str, list[str]]] = operation.get("security") or []
    return bool(security) and {} not in security


def _is_public(operation: dict[str, Any]) -> bool:
    """An operation clients call through the gateway (not an internal one)."""
    return {CLIENT_SCHEME_NAME: []} in operation.get("security", [])


def _add_error_responses(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    if "requestBody" in operation:
        responses.setdefault(
            "400",
            {
                "description": "Invalid input (code `invalid`, "
                "per-field messages in "
                "`details.fields`)."
            },
        )
    protected = _requires_credentials(operation)
    if protected:
        responses.setdefault("401", {"description": "Missing or invalid credentials."})
    responses.setdefault(
        "default",
        {"description": "Unexpected error (e.g. 500 `server_error`, 503 `service_unavailable`)."},
    )
    for status_code, response in responses.items():
        if status_code != "default" and not status_code.startswith(("4", "5")):
            continue
        if "content" not in response:
            response["content"] = {_JSON: {"schema": dict(ERROR_REF)}}
        if protected and status_code in ("401", "403") and _is_public(operation):
            # The gateway checks the access token first and answers in Kong's shape.
            for media in response["content"].values():
                if media.get("schema") == ERROR_REF:
                    media["schema"] = {"anyOf": [dict(ERROR_REF), dict(GATEWAY_ERROR_REF)]}
        if status_code == "401":
            headers = response.setdefault("headers", {})
            for name, header in _WWW_AUTHENTICATE.items():
                headers.setdefault(name, copy.deepcopy(header))
