"""The single JSON error shape (auth_backend.core.errors) across every kind of error."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.test import Client
from django.urls import include, path
from errors_support import assert_error_shape
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.urls import handler400, handler403, handler404, handler500  # noqa: F401

SECRET_TEXT = "password=hunter2 at db.internal:5432"


# --- Test-only URLconf (activated per test with @pytest.mark.urls(__name__)) ---------------


class _OpenView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class CrashingApiView(_OpenView):
    def get(self, request):
        raise RuntimeError(SECRET_TEXT)


def crashing_django_view(request):
    raise KeyError(SECRET_TEXT)


class NotFoundApiView(_OpenView):
    def get(self, request):
        raise Http404(f"No User matches the given query: {SECRET_TEXT}")


class EmailSerializer(serializers.Serializer):
    email = serializers.EmailField()


class DrfValidationView(_OpenView):
    def post(self, request):
        serializer = EmailSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class DjangoValidationView(_OpenView):
    def post(self, request):
        raise DjangoValidationError("This email is already registered.")


class ThrottledView(_OpenView):
    def get(self, request):
        raise exceptions.Throttled(wait=29.2)


class DeniedByDefaultView(APIView):  # project defaults: no authentication, IsAuthenticated
    def get(self, request):
        return Response({"secret": True})


urlpatterns = [
    path("test/crash-drf/", CrashingApiView.as_view()),
    path("test/crash-django/", crashing_django_view),
    path("test/not-found/", NotFoundApiView.as_view()),
    path("test/validate/", DrfValidationView.as_view()),
    path("test/validate-django/", DjangoValidationView.as_view()),
    path("test/throttled/", ThrottledView.as_view()),
    path("test/default-permissions/", DeniedByDefaultView.as_view()),
    path("", include("auth_backend.urls")),
]

# ---------------------------------------------------------------------------------------------


def assert_nothing_leaked(response) -> None:
    text = response.content.decode()
    for leak in ("hunter2", "db.internal", "Traceback", "RuntimeError", "KeyError", "<html"):
        assert leak not in text


@pytest.fixture
def quiet_client() -> Client:
    """A client that returns 500 responses instead of re-raising the view's exception."""
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("path", ["/api/auth/nope/", "/api/auth/health/live/extra", "/"])
def test_unknown_path_is_json_404(client, settings, debug, path):
    settings.DEBUG = debug

    response = client.get(path)

    body = assert_error_shape(response, 404, "not_found")
    assert body["error"] == {"code": "not_found", "message": "Not found.", "details": {}}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("path", ["/test/crash-drf/", "/test/crash-django/"])
def test_unhandled_exception_is_generic_json_500(quiet_client, settings, caplog, debug, path):
    settings.DEBUG = debug

    response = quiet_client.get(path, headers={"X-Request-ID": "req-500"})

    body = assert_error_shape(response, 500, "server_error")
    assert body["error"]["message"] == "A server error occurred."
    assert body["request_id"] == "req-500"
    assert_nothing_leaked(response)
    # ... while the traceback is in the server log.
    assert any(r.exc_info and SECRET_TEXT in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.urls(__name__)
def test_http404_text_from_a_view_is_not_echoed(client):
    response = client.get("/test/not-found/")

    body = assert_error_shape(response, 404, "not_found")
    assert body["error"]["message"] == "Not found."
    assert_nothing_leaked(response)


@pytest.mark.urls(__name__)
def test_drf_validation_error_lists_fields(client):
    response = client.post("/test/validate/", {"email": "nope"}, content_type="application/json")

    body = assert_error_shape(response, 400, "invalid")
    assert body["error"]["details"] == {"fields": {"email": ["Enter a valid email address."]}}


@pytest.mark.urls(__name__)
def test_django_validation_error_from_a_service_is_a_400(client):
    response = client.post("/test/validate-django/", {}, content_type="application/json")

    body = assert_error_shape(response, 400, "invalid")
    assert body["error"]["details"] == {
        "fields": {"non_field_errors": ["This email is already registered."]}
    }


@pytest.mark.urls(__name__)
def test_malformed_json_is_a_parse_error(client):
    response = client.post("/test/validate/", "{not json", content_type="application/json")

    assert_error_shape(response, 400, "parse_error")
    assert_nothing_leaked(response)


@pytest.mark.urls(__name__)
def test_throttled_keeps_retry_after(client):
    response = client.get("/test/throttled/")

    body = assert_error_shape(response, 429, "throttled")
    assert response["Retry-After"] == "30"
    assert body["error"]["details"] == {"retry_after": 30}


@pytest.mark.urls(__name__)
def test_views_require_a_gateway_identity_by_default(client):
    response = client.get("/test/default-permissions/")

    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_disallowed_host_is_json_400(client):
    response = client.get("/api/auth/health/live/", headers={"Host": "evil.example"})

    assert_error_shape(response, 400, "bad_request")


def test_request_id_is_taken_from_x_request_id(client):
    response = client.get(
        "/api/auth/nope/", headers={"X-Request-ID": "abc-123", "X-Kong-Request-Id": "kong-1"}
    )

    assert response["X-Request-ID"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"


def test_request_id_falls_back_to_kongs_header(client):
    response = client.get("/api/auth/nope/", headers={"X-Kong-Request-Id": "a1b2c3d4e5f6"})

    assert response.json()["request_id"] == "a1b2c3d4e5f6"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quote"inside', "<script>"])
def test_unacceptable_request_id_is_replaced(client, bad):
    response = client.get("/api/auth/nope/", headers={"X-Request-ID": bad})

    request_id = response.json()["request_id"]
    assert request_id != bad
    assert len(request_id) == 32
    assert response["X-Request-ID"] == request_id


def test_request_id_is_generated_when_absent(client):
    first = client.get("/api/auth/nope/").json()["request_id"]
    second = client.get("/api/auth/nope/").json()["request_id"]

    assert first and second and first != second


# --- the JSON parser's bounds (core/parsers.py) -----------------------------------------------


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "The JSON body nests deeper than 32 levels."),
        (b'{"a": "' + b"x" * 70_000 + b'"}', "The request body is larger than 65536 bytes."),
        (b"{not json", "The request body is not valid JSON."),
        (b'{"a": NaN}', "The request body is not valid JSON."),
        (b'{"a": "\xff"}', "The request body is not valid JSON."),
    ],
    ids=["deep", "large", "malformed", "nan", "not-utf8"],
)
def test_hostile_json_is_a_parse_error_in_our_words(client, body, message):
    response = client.post("/test/validate/", body, content_type="application/json")

    error = assert_error_shape(response, 400, "parse_error")["error"]
    assert error["message"] == message
    assert_nothing_leaked(response)


@pytest.mark.urls(__name__)
def test_json_at_the_depth_limit_is_parsed(client, settings):
    settings.JSON_MAX_DEPTH = 3
    ok = client.post("/test/validate/", b'{"a": [[1]]}', content_type="application/json")
    assert ok.status_code != 400 or ok.json()["error"]["code"] != "parse_error"
    deep = client.post("/test/validate/", b'{"a": [[[1]]]}', content_type="application/json")
    assert_error_shape(deep, 400, "parse_error")


def test_json_depth_ignores_brackets_in_strings():
    from auth_backend.core.parsers import json_depth

    assert json_depth(b'{"a": "[[[[{{{", "b": ["\\"]]]"]}') == 2
    assert json_depth(b"42") == 0
    assert json_depth(b"[" * 50) == 50
