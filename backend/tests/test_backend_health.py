"""Health endpoints: /api/auth/health/live/ and /api/auth/health/ready/.

Public readiness says only ready or not; the per-dependency report is internal
(backend/tests/test_health_ready_checks.py).
"""

from __future__ import annotations

import pytest
from errors_support import assert_error_shape

from auth_backend.internal.keys import generate_api_key, hash_api_key, parse_api_keys
from tests.support.services import closed_port

LIVE = "/api/auth/health/live"
READY = "/api/auth/health/ready"
INTERNAL_READY = "/internal/auth/health/ready"
KEY = generate_api_key()


@pytest.mark.parametrize("path", [f"{LIVE}/", LIVE])
def test_live_is_ok_with_and_without_trailing_slash(client, django_db_blocker, path):
    with django_db_blocker.block():  # any database access would raise -> 500
        response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert response["X-Request-ID"]


def test_live_answers_head(client):
    assert client.head(f"{LIVE}/").status_code == 200


def test_live_rejects_other_methods_in_the_error_shape(client):
    response = client.post(f"{LIVE}/", {}, content_type="application/json")

    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.django_db
@pytest.mark.redis
@pytest.mark.parametrize("path", [f"{READY}/", READY])
def test_ready_is_ok_when_the_database_answers(client, redis_url, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # ready, nothing about the dependencies
    assert "no-store" in response["Cache-Control"]


def test_public_ready_names_no_dependency_when_not_ready(client, health_database):
    """Which dependency is down, and how fast each answered, is for operators only."""
    health_database(f"postgres://postgres@127.0.0.1:{closed_port()}/test")

    response = client.get(f"{READY}/")

    body = assert_error_shape(response, 503, "service_unavailable")
    assert body["error"]["details"] == {}
    text = response.content.decode()
    for word in ("database", "redis", "event_bus", "latency", "checks", "127.0.0.1"):
        assert word not in text


@pytest.mark.django_db
def test_the_detailed_report_is_internal(internal_client, health_database, settings):
    client = internal_client
    settings.INTERNAL_API_KEYS = parse_api_keys(f"monitoring:{hash_api_key(KEY)}")
    health_database(f"postgres://postgres@127.0.0.1:{closed_port()}/test")

    anonymous = client.get(INTERNAL_READY)
    assert_error_shape(anonymous, 401, "not_authenticated")

    response = client.get(INTERNAL_READY, HTTP_AUTHORIZATION=f"Bearer {KEY}")

    body = assert_error_shape(response, 503, "service_unavailable")
    database = body["error"]["details"]["checks"]["database"]
    assert database["status"] == "unavailable"
    assert isinstance(database["latency_ms"], float)
    assert "127.0.0.1" not in response.content.decode()
    assert response["Cache-Control"] == "no-store"


def test_ready_is_503_when_the_sqlite_file_cannot_be_opened(client, health_database, tmp_path):
    health_database(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")

    response = client.get(READY)

    assert_error_shape(response, 503, "service_unavailable")
    assert "missing-dir" not in response.content.decode()


def test_ready_is_503_within_the_connect_timeout_when_postgres_hangs(
    client, health_database, silent_server, monkeypatch
):
    """Bounded by the connect timeout the driver is given (asserted on the call, not on how
    long the request took); the silent server's own hang guard ends a driver without one."""
    import psycopg

    health_database(f"postgres://postgres@127.0.0.1:{silent_server}/test", connect_timeout=2)
    timeouts = []
    real_connect = psycopg.connect

    def recording_connect(*args, **kwargs):
        timeouts.append(kwargs.get("connect_timeout"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", recording_connect)

    response = client.get(READY)

    assert_error_shape(response, 503, "service_unavailable")
    assert timeouts == [2]  # one attempt, with the configured connect timeout


@pytest.mark.redis
def test_ready_recovers_after_the_database_comes_back(client, health_database, tmp_path, redis_url):
    db_dir = tmp_path / "later"
    health_database(f"sqlite:///{db_dir / 'db.sqlite3'}")
    assert client.get(READY).status_code == 503

    db_dir.mkdir()

    assert client.get(READY).status_code == 200


@pytest.mark.postgres
@pytest.mark.redis
def test_ready_against_real_postgresql(client, health_database, postgres_url, redis_url):
    connection = health_database(postgres_url)

    response = client.get(f"{READY}/")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone()[0] == "test"
