"""Readiness: database, Redis and the event bus, each timed and bounded.

The per-check report is the internal API's (``/internal/auth/health/ready``, service API key);
the public ``/api/auth/health/ready`` only says ready or not (backend/tests/test_backend_health.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType, record_event
from auth_backend.health import selectors
from auth_backend.internal.keys import generate_api_key, hash_api_key, parse_api_keys
from tests.support.services import closed_port

READY = "/internal/auth/health/ready/"
CHECKS = {"database", "redis", "event_bus"}
KEY = generate_api_key()


@pytest.fixture
def client(internal_client, settings):
    """The test client on the internal listener, presenting an internal API key on every
    request."""
    client = internal_client
    settings.INTERNAL_API_KEYS = parse_api_keys(f"monitoring:{hash_api_key(KEY)}")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {KEY}"
    return client


def unavailable_checks(response) -> dict:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert body["request_id"] == response["X-Request-ID"]
    checks = body["error"]["details"]["checks"]
    assert set(checks) == CHECKS
    for check in checks.values():
        assert check["status"] in {"ok", "unavailable"}
        assert isinstance(check["latency_ms"], int | float) and check["latency_ms"] >= 0
    return checks


@pytest.mark.django_db
@pytest.mark.redis
def test_ready_reports_every_check_with_its_latency(client, stream):
    response = client.get(READY)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], int | float) and check["latency_ms"] >= 0
    assert body["checks"]["event_bus"]["oldest_unpublished_age_seconds"] is None


@pytest.mark.django_db
@pytest.mark.redis
def test_ready_reports_the_age_of_the_outbox_backlog(client, stream):
    waiting = record_event(EventType.LOGIN_SUCCEEDED, subject_id="u")
    OutboxEvent.objects.filter(pk=waiting.pk).update(
        occurred_at=timezone.now() - timedelta(minutes=2)
    )
    published = record_event(EventType.LOGIN_SUCCEEDED, subject_id="p")
    OutboxEvent.objects.filter(pk=published.pk).update(
        occurred_at=timezone.now() - timedelta(hours=1), published_at=timezone.now()
    )

    body = client.get(READY).json()

    age = body["checks"]["event_bus"]["oldest_unpublished_age_seconds"]
    assert 120 <= age < 180
    assert body["status"] == "ok"  # a lagging relay is reported, not a readiness failure


@pytest.mark.django_db
@pytest.mark.redis
def test_the_writability_probe_leaves_the_stream_untouched(client, redis_conn, stream):
    assert client.get(READY).status_code == 200
    assert redis_conn.exists(stream) == 0  # not even created

    redis_conn.xadd(stream, {"event_id": "x"})
    assert client.get(READY).status_code == 200
    assert redis_conn.xlen(stream) == 1


@pytest.mark.django_db
def test_ready_is_503_when_redis_refuses_connections(client, settings):
    port = closed_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/15"

    response = client.get(READY)

    checks = unavailable_checks(response)
    assert checks["database"]["status"] == "ok"
    assert checks["redis"]["status"] == "unavailable"
    assert checks["event_bus"]["status"] == "unavailable"
    assert str(port) not in response.content.decode()


@pytest.mark.django_db
def test_ready_is_503_within_the_timeout_when_redis_hangs(
    client, settings, silent_server, monkeypatch
):
    """One timeout, not one per retry or per check: asserted on the client the check builds
    and on the connections it opens, not on how long the request took."""
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_server}/15"
    settings.HEALTH_CHECK_TIMEOUT_MS = 300
    built: list[redis.Redis] = []
    connects: list[float | None] = []

    real_client = selectors.redis_client

    def recording_client(**kwargs):
        built.append(real_client(**kwargs))
        return built[-1]

    # One call per attempt: redis-py's connect() retries this under its Retry policy.
    real_attempt = redis.connection.AbstractConnection.connect_check_health

    def recording_attempt(self, *args, **kwargs):
        connects.append(self.socket_timeout)
        return real_attempt(self, *args, **kwargs)

    monkeypatch.setattr(selectors, "redis_client", recording_client)
    monkeypatch.setattr(
        redis.connection.AbstractConnection, "connect_check_health", recording_attempt
    )

    response = client.get(READY)

    checks = unavailable_checks(response)
    assert checks["redis"]["status"] == "unavailable"
    assert checks["event_bus"]["status"] == "unavailable"
    (made,) = built
    kwargs = made.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.3
    assert connects == [0.3]  # one attempt: no retry, and the event bus check not tried


@pytest.mark.redis
def test_ready_is_503_when_the_database_is_unreachable(client, health_database, stream):
    health_database(f"postgres://postgres@127.0.0.1:{closed_port()}/test")

    checks = unavailable_checks(client.get(READY))

    assert checks["database"]["status"] == "unavailable"
    assert checks["redis"]["status"] == "ok"
    assert checks["event_bus"]["status"] == "ok"
    assert checks["event_bus"]["oldest_unpublished_age_seconds"] is None


@pytest.mark.django_db
@pytest.mark.redis
def test_ready_is_503_when_the_stream_key_is_not_a_stream(client, redis_conn, stream):
    redis_conn.set(stream, "oops")

    checks = unavailable_checks(client.get(READY))

    assert checks["redis"]["status"] == "ok"
    assert checks["event_bus"]["status"] == "unavailable"


@pytest.mark.django_db
@pytest.mark.redis
def test_ready_is_503_when_redis_refuses_writes_to_the_stream(client, redis_conn, stream, settings):
    """An account that may PING but not XADD (as with a read-only replica): not ready."""
    user = f"ready-test-{uuid.uuid4().hex[:12]}"
    redis_conn.acl_setuser(user, enabled=True, nopass=True, keys=["*"], commands=["+@all", "-xadd"])
    try:
        settings.REDIS_URL = f"redis://{user}@127.0.0.1:6379/15"

        checks = unavailable_checks(client.get(READY))
    finally:
        redis_conn.acl_deluser(user)

    assert checks["redis"]["status"] == "ok"
    assert checks["event_bus"]["status"] == "unavailable"
    assert redis_conn.exists(stream) == 0
