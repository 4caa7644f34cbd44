"""The three listeners (public, internal, metrics) and the HTTP metrics, with Django's test
client: the listener comes from the WSGI environ (``auth_backend.listener``, no gunicorn
socket here); backend/tests/test_listeners_gunicorn.py runs the real gunicorn listeners."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from auth_backend.core import listeners
from auth_backend.core.http_metrics import route_label

pytestmark = pytest.mark.django_db


def on(listener: str) -> Client:
    return Client(**{listeners.ENVIRON_KEY: listener})


def assert_not_found(response) -> None:
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert set(body) == {"error", "request_id"}


def requests_total(**labels: str) -> float:
    return REGISTRY.get_sample_value("auth_http_requests_total", labels) or 0.0


def test_without_a_socket_or_listener_the_request_is_on_the_public_listener() -> None:
    client = Client()
    assert client.get("/api/auth/health/live").status_code == 200
    for path in ("/internal/auth/users/batch", "/admin/", "/metrics", "/api/auth/metrics"):
        assert_not_found(client.get(path))


def test_internal_listener_serves_internal_and_admin_only() -> None:
    client = on("internal")
    assert client.get("/internal/auth/users/batch").status_code == 401  # routed: needs a key
    assert client.get("/admin/login/").status_code == 200
    for path in ("/api/auth/login", "/api/auth/health/live", "/metrics"):
        assert_not_found(client.get(path))


def test_metrics_listener_serves_the_exposition_only() -> None:
    client = on("metrics")
    for path in ("/metrics", "/metrics/", "/api/auth/metrics"):
        response = client.get(path)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"# TYPE auth_http_requests_total counter" in response.content
    for path in ("/api/auth/health/live", "/internal/auth/users/batch", "/admin/"):
        assert_not_found(client.get(path))


def test_metrics_answers_openmetrics_when_asked() -> None:
    response = on("metrics").get("/metrics", HTTP_ACCEPT="application/openmetrics-text")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_an_unknown_listener_serves_nothing() -> None:
    for path in ("/api/auth/health/live", "/internal/auth/users/batch", "/metrics"):
        assert_not_found(on("gateway").get(path))


class FakeSocket:
    def __init__(self, local: object) -> None:
        self.local = local

    def getsockname(self) -> object:
        return self.local


@pytest.fixture
def ports() -> dict[int, str]:
    mapping = {18080: "public", 18081: "internal", 19100: "metrics"}
    listeners.configure(mapping)
    yield mapping
    listeners.configure({})


def test_under_gunicorn_the_accepted_sockets_port_decides(ports) -> None:
    assert listeners.listener_of({"gunicorn.socket": FakeSocket(("10.0.0.5", 18081))}) == "internal"
    assert listeners.listener_of({"gunicorn.socket": FakeSocket(("::1", 19100, 0, 0))}) == "metrics"
    # The environ key and the Host-derived SERVER_PORT never override the socket.
    assert (
        listeners.listener_of(
            {
                "gunicorn.socket": FakeSocket(("127.0.0.1", 18080)),
                listeners.ENVIRON_KEY: "internal",
                "SERVER_PORT": "18081",
            }
        )
        == "public"
    )
    assert listeners.listener_of({"gunicorn.socket": FakeSocket(("127.0.0.1", 1))}) == "unknown"
    assert listeners.listener_of({"gunicorn.socket": FakeSocket("/run/x.sock")}) == "unknown"


@pytest.mark.parametrize(
    ("route", "label"),
    [
        ("api/auth/login/?$", "/api/auth/login"),
        ("internal/auth/users/(?P<user_id>[^/]+)/?$", "/internal/auth/users/<user_id>"),
        ("internal/auth/check-email/(?P<email>.+?)/?$", "/internal/auth/check-email/<email>"),
        ("api/auth/^\\.well-known/jwks\\.json/?$", "/api/auth/.well-known/jwks.json"),
        ("admin/accounts/user/<path:object_id>/", "/admin/accounts/user/<path:object_id>/"),
        (None, "unmatched"),
    ],
)
def test_route_labels_are_templates(route, label) -> None:
    assert route_label(route) == label


def test_requests_are_counted_by_route_template_not_path() -> None:
    labels = {
        "listener": "internal",
        "route": "/internal/auth/users/<user_id>",
        "method": "GET",
        "status": "401",
    }
    before = requests_total(**labels)
    client = on("internal")
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for user_id in ids:
        assert client.get(f"/internal/auth/users/{user_id}").status_code == 401
    assert requests_total(**labels) == before + 2
    exposition = on("metrics").get("/metrics").content.decode()
    assert not [i for i in ids if i in exposition]
    assert (
        REGISTRY.get_sample_value(
            "auth_http_request_duration_seconds_count",
            {k: labels[k] for k in ("listener", "route", "method")},
        )
        >= 2
    )


def test_a_request_matching_no_route_is_labelled_unmatched() -> None:
    labels = {"listener": "public", "route": "unmatched", "method": "GET", "status": "404"}
    before = requests_total(**labels)
    assert_not_found(Client().get(f"/api/auth/no-such-thing/{uuid.uuid4()}"))
    assert_not_found(Client().get("/internal/auth/users/batch"))  # wrong listener
    assert requests_total(**labels) == before + 2


def test_unusual_methods_share_one_label() -> None:
    labels = {"listener": "public", "route": "/api/auth/health/live", "method": "other"}
    before = requests_total(**labels, status="405")
    Client().generic("BREW", "/api/auth/health/live")
    assert requests_total(**labels, status="405") == before + 1
