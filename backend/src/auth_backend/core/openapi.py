"""OpenAPI (drf-spectacular) refinements shared by every app's views.

What this adds to the generated schema (wired in ``settings.SPECTACULAR_SETTINGS``):

* **Error component** -- ``#/components/schemas/Error`` is the one error shape of
  :mod:`auth_backend.core.errors`. Every 4xx/5xx response documented without a body gets it,
  every operation gets a ``default`` response with it (unexpected errors), operations with a
  request body get a ``400`` and protected operations a ``401`` (with ``WWW-Authenticate``)
  unless they document their own. Views describe specific errors with
  :func:`error_response`::

      @extend_schema(responses={200: TwoFactorSetupOutputSerializer,
                                409: error_response("2FA is already on.",
                                                    "two_factor_already_enabled")})

* **Security schemes** -- views authenticated by the gateway's identity assertion require
  ``AccessToken`` (the client's bearer token, checked by the gateway) or ``GatewayIdentity``
  (the assertion header the gateway then sets); internal views require ``InternalApiKey``.
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

_JSON = "application/json"
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'RFC 6750 challenge: `Bearer realm="…"`, plus '
        '`error="invalid_token"` for rejected credentials.',
        "schema": {"type": "string"},
    }
}

GATEWAY_IDENTITY_SCHEMES: dict[str, dict[str, Any]] = {
    "AccessToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token from `login` / `token/refresh`, sent to the gateway "
        "as `Authorization: Bearer <token>`. The gateway validates it and "
        "forwards the caller's identity as `X-Identity-Assertion`.",
    },
    "GatewayIdentity": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Identity-Assertion",
        "description": "Compact JWS signed by the gateway (claims `sub`, `email`, `roles`, "
        "`scope`, `jti`, `exp` within 60 s), the only identity this service "
        "trusts. Bound to one request (`req_method`, `req_path`) and accepted "
        "once (`assertion_id`). Set by the gateway alone: it strips any "
        "client-supplied value.",
    },
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
    target_class = "auth_backend.identity.authentication.GatewayAssertionAuthentication"
    name = list(GATEWAY_IDENTITY_SCHEMES)

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return list(GATEWAY_IDENTITY_SCHEMES.values())

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        # Either one: clients present the token, the gateway turns it into the assertion.
        return [{name: []} for name in GATEWAY_IDENTITY_SCHEMES]


class InternalApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "auth_backend.internal.authentication.InternalApiKeyAuthentication"
    name = "InternalApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return INTERNAL_API_KEY_SCHEME


# --- tags ------------------------------------------------------------------------------------


class AutoSchema(SpectacularAutoSchema):
    """The project's schema class (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``)."""

    def get_tags(self) -> list[str]:
        if self.path.startswith(INTERNAL_PREFIX):
            return [INTERNAL_TAG]
        if self.path.startswith(PUBLIC_PREFIX):
            segment = self.path[len(PUBLIC_PREFIX) :].split("/", 1)[0]
            if segment:
                return [TAG_BY_SEGMENT.get(segment, segment)]
        return super().get_tags()


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
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _add_error_responses(operation)
    return result


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
    security = operation.get("security")
    if security and {} not in security:
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
        if status_code == "401":
            headers = response.setdefault("headers", {})
            for name, header in _WWW_AUTHENTICATE.items():
                headers.setdefault(name, copy.deepcopy(header))
