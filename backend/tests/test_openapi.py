"""The OpenAPI schema at /api/auth/schema/, its Swagger UI, and the internal schema."""

from __future__ import annotations

import re

import jsonschema
import pytest
import yaml
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema

from auth_backend.core.openapi import ERROR_SCHEMA, internal_endpoints, public_endpoints
from auth_backend.internal.keys import generate_api_key, hash_api_key, parse_api_keys

pytestmark = pytest.mark.django_db

SCHEMA = "/api/auth/schema/"
KEY = generate_api_key()
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {KEY}"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(autouse=True)
def internal_key(settings):
    settings.INTERNAL_API_KEYS = parse_api_keys(f"orders:{hash_api_key(KEY)}")


@pytest.fixture
def public_schema(client) -> dict:
    response = client.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def internal_schema(internal_client) -> dict:
    response = internal_client.get("/internal/auth/schema", {"format": "json"}, **AUTH)
    assert response.status_code == 200, response.content
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(schema: dict, ref: dict) -> dict:
    name = ref["$ref"].rsplit("/", 1)[-1]
    return schema["components"]["schemas"][name]


# --- the public schema -------------------------------------------------------------------------


def test_schema_is_valid_openapi_3_json(client):
    response = client.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # against the official OpenAPI 3 JSON Schema


@pytest.mark.parametrize("url", ["/api/auth/schema/", "/api/auth/schema"])
def test_schema_is_served_as_yaml_by_default(client, url):
    response = client.get(url)
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert "/api/auth/health/live/" in document["paths"]


def test_schema_lists_public_paths_only(public_schema):
    paths = set(public_schema["paths"])
    assert "/api/auth/health/live/" in paths
    assert "/api/auth/health/ready/" in paths
    assert all(path.startswith("/api/auth/") for path in paths), sorted(paths)
    assert not [p for p in paths if p.startswith(("/internal/", "/admin/"))]


def test_schema_paths_are_readable_and_unique(public_schema):
    paths = set(public_schema["paths"])
    assert not [p for p in paths if "\\" in p or "?" in p or "(" in p]
    # Routes answer with and without the slash; the schema shows each once.
    assert not [p for p in paths if not p.endswith("/") and f"{p}/" in paths]


def test_schema_has_servers_and_tags(public_schema):
    assert public_schema["servers"] == [{"url": "/"}]
    tags = {tag["name"] for tag in public_schema["tags"]}
    assert {"accounts", "tokens", "profile", "2fa", "seller", "health"} <= tags
    assert "internal" not in tags
    for _, _, operation in operations(public_schema):
        assert operation.get("tags"), operation["operationId"]
    assert public_schema["paths"]["/api/auth/health/live/"]["get"]["tags"] == ["health"]


def test_schema_documents_the_security_schemes(public_schema):
    schemes = public_schema["components"]["securitySchemes"]
    # The gateway sets X-Identity-Assertion (and strips a client's): no client may be told
    # to send it, as a scheme or as a header parameter.
    assert set(schemes) == {"AccessToken"}
    assert schemes["AccessToken"]["scheme"] == "bearer"
    for _, _, operation in operations(public_schema):
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "x-identity-assertion" not in names, operation["operationId"]


def test_request_strings_say_what_the_serializers_enforce(public_schema):
    schemas = public_schema["components"]["schemas"]
    token = schemas["VerifyEmailInput"]["properties"]["token"]
    assert token["minLength"] == 1  # blank is refused
    assert re.search(token["pattern"], "  ") is None  # trimmed to blank
    assert re.search(token["pattern"], "a\x00") is None  # DRF refuses NUL
    assert re.search(token["pattern"], " abc ")
    password = schemas["RegisterInput"]["properties"]["password"]
    assert password["minLength"] == 10  # AUTH_PASSWORD_VALIDATORS
    assert re.search(password["pattern"], "0123456789") is None  # not all digits
    code = schemas["TwoFactorCodeInput"]["properties"]["code"]
    assert code["pattern"] == "^[0-9]{6}$"
    motivation = schemas["ApplyInput"]["properties"]["motivation"]
    assert re.search(motivation["pattern"], "x" + " " * 18 + "x")
    assert re.search(motivation["pattern"], " x" + "y" * 17 + " ") is None  # 18 once trimmed
    profile = schemas["PatchedProfileUpdate"]
    assert profile["additionalProperties"] is False
    assert "en" in schemas["LanguageEnum"]["enum"]


def test_logout_needs_the_access_token_at_the_gateway(public_schema):
    logout = public_schema["paths"]["/api/auth/logout/"]["post"]
    assert logout["security"] == [{"AccessToken": []}]
    gateway_or_backend = {"anyOf": [ERROR_REF, {"$ref": "#/components/schemas/GatewayError"}]}
    assert logout["responses"]["401"]["content"]["application/json"]["schema"] == (
        gateway_or_backend
    )


def test_error_component_is_the_projects_error_shape(public_schema):
    error = public_schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "request_id"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]


def test_every_operation_documents_errors_with_the_error_component(public_schema):
    for path, method, operation in operations(public_schema):
        responses = operation["responses"]
        assert responses["default"]["content"]["application/json"]["schema"] == ERROR_REF
        for status_code, response in responses.items():
            if status_code.startswith(("4", "5")):
                assert "application/json" in response.get("content", {}), (path, status_code)
        if "requestBody" in operation:
            assert "400" in responses, (path, method)


def test_protected_operations_require_gateway_identity_and_document_401(public_schema):
    operation = public_schema["paths"]["/api/auth/health/live/"]["get"]
    assert {} in operation.get("security", [{}])  # public: no credentials
    protected = [
        (path, op)
        for path, _, op in operations(public_schema)
        if op.get("security") and {} not in op["security"]
    ]
    assert protected, "the seller endpoints at least are protected"
    for path, op in protected:
        assert op["security"] == [{"AccessToken": []}], path
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"], path


def test_schema_is_public_and_ignores_identity_headers(client):
    response = client.get(SCHEMA, {"format": "json"}, HTTP_X_IDENTITY_ASSERTION="forged")
    assert response.status_code == 200


def test_error_responses_of_the_service_match_the_error_component(client, internal_client):
    response = internal_client.get("/internal/auth/users/not-a-uuid", **AUTH)
    assert response.status_code == 400
    jsonschema.validate(response.json(), ERROR_SCHEMA)
    response = client.get("/api/auth/does-not-exist")
    assert response.status_code == 404
    jsonschema.validate(response.json(), ERROR_SCHEMA)


# --- Swagger UI --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/auth/schema/swagger/", "/api/auth/schema/swagger"])
def test_swagger_ui_is_an_html_page_for_the_schema(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "SwaggerUIBundle" in page
    assert 'url: "/api/auth/schema"' in page


# --- the internal schema -----------------------------------------------------------------------


def test_internal_schema_needs_an_api_key(internal_client):
    response = internal_client.get("/internal/auth/schema", {"format": "json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="internal"'


def test_internal_schema_documents_the_internal_api_only(internal_schema):
    validate_schema(internal_schema)
    assert set(internal_schema["paths"]) == {
        "/internal/auth/users/{user_id}/",
        "/internal/auth/users/batch/",
        "/internal/auth/validate-token/",
        "/internal/auth/check-email/{email}/",
        "/internal/auth/health/ready/",
    }
    assert set(internal_schema["components"]["securitySchemes"]) == {"InternalApiKey"}
    for path, _, operation in operations(internal_schema):
        assert operation["security"] == [{"InternalApiKey": []}], path
        assert operation["tags"] == ["internal"], path
        assert set(operation["responses"]) >= {"200", "401", "default"}, path


def test_internal_schema_describes_parameters_and_bodies(internal_schema):
    user = internal_schema["paths"]["/internal/auth/users/{user_id}/"]["get"]
    [parameter] = user["parameters"]
    assert (parameter["name"], parameter["schema"]["format"]) == ("user_id", "uuid")
    assert {"400", "404"} <= set(user["responses"])

    batch = internal_schema["paths"]["/internal/auth/users/batch/"]["post"]
    body = resolve(internal_schema, batch["requestBody"]["content"]["application/json"]["schema"])
    assert body["properties"]["ids"]["maxItems"] == 100
    examples = batch["responses"]["400"]["content"]["application/json"]["examples"]
    details = {
        example["value"]["error"]["code"]: example["value"]["error"]["details"]
        for example in examples.values()
    }
    assert set(details) == {"invalid", "too_many_ids", "invalid_id"}
    assert details["too_many_ids"] == {"max_ids": 100, "received": 101}

    introspection = internal_schema["paths"]["/internal/auth/validate-token/"]["post"]
    answer = resolve(
        internal_schema, introspection["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert answer["required"] == ["active"]


def test_public_schema_generates_without_warnings(client):
    """Every public view is annotated well enough for drf-spectacular (no guessing)."""
    GENERATOR_STATS.reset()
    response = client.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    assert not GENERATOR_STATS, (
        dict(GENERATOR_STATS._warn_cache),
        dict(GENERATOR_STATS._error_cache),
    )


def test_internal_schema_generates_without_warnings(internal_client):
    GENERATOR_STATS.reset()
    response = internal_client.get("/internal/auth/schema", {"format": "json"}, **AUTH)
    assert response.status_code == 200
    assert not GENERATOR_STATS, (
        dict(GENERATOR_STATS._warn_cache),
        dict(GENERATOR_STATS._error_cache),
    )


# --- path selection hooks ----------------------------------------------------------------------


def test_hooks_select_by_prefix_and_tidy_paths():
    callback = object()
    endpoints = [
        ("/api/auth/health/live/", "", "GET", callback),
        ("/api/auth/health/live", "", "GET", callback),
        ("/api/auth/login/", "", "POST", callback),
        ("/api/auth/.well\\-known/jwks.json/", "", "GET", callback),
        ("/api/auth/schema", "", "GET", callback),
        ("/internal/auth/users/{user_id}/", "", "GET", callback),
        ("/admin/accounts/user/", "", "GET", callback),
        ("/api/authx/other/", "", "GET", callback),
    ]
    assert [e[:3] for e in public_endpoints(endpoints)] == [
        ("/api/auth/health/live/", "", "GET"),
        ("/api/auth/login/", "", "POST"),
        ("/api/auth/.well-known/jwks.json", "", "GET"),
        ("/api/auth/schema/", "", "GET"),
    ]
    assert [e[0] for e in internal_endpoints(endpoints)] == ["/internal/auth/users/{user_id}/"]
