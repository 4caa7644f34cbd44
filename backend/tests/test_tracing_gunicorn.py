"""Tracing of the real backend process: gunicorn started as ``scripts/run-local`` does it.

``gunicorn -c backend/gunicorn.conf.py auth_backend.wsgi`` with the standard ``OTEL_*``
variables (tests/support/backend.py starts it, SQLite in a temporary directory as under
``make run``; one test uses PostgreSQL as in production). Requests arrive as the gateway
sends them (``traceparent``, ``tracestate``, ``X-Request-ID``) and the spans are collected
by :class:`tests.support.otlp_receiver.OtlpReceiver`, a real OTLP/HTTP endpoint that decodes the
protobuf. The outbox relay runs as its own process (``manage.py relay_outbox --once``).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from concurrency_support import _admin

from tests.support.backend import PASSWORD, Backend, running_backend
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.services import REDIS_TEST_URL, closed_port, redis_unavailable, require

pytestmark = pytest.mark.gunicorn  # the real backend as a process: not in make test-fast
SERVER = 2  # OTLP SpanKind
DB_SCOPES = {
    "opentelemetry.instrumentation.dbapi": "sqlite",
    "opentelemetry.instrumentation.psycopg": "postgresql",
}
# Whatever the developer's shell exports, these tests decide about tracing themselves.
HERMETIC_OTEL = {
    "OTEL_SDK_DISABLED": "false",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
}


def otel_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {**HERMETIC_OTEL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, **extra}


def new_trace() -> tuple[str, str, dict[str, str]]:
    """A gateway-style trace id, parent (gateway span) id and the headers carrying them."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return (
        trace_id,
        parent,
        {
            "traceparent": f"00-{trace_id}-{parent}-01",
            "tracestate": f"kong={parent}",
            "X-Request-ID": f"req-{secrets.token_hex(6)}",
        },
    )


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def has_server_and_db(trace_id: str) -> Any:
    def check(spans: list[ReceivedSpan]) -> bool:
        mine = in_trace(spans, trace_id)
        return any(s.kind == SERVER for s in mine) and any(s.scope_name in DB_SCOPES for s in mine)

    return check


def descends_from(span: ReceivedSpan, ancestor_id: str, spans: list[ReceivedSpan]) -> bool:
    index = {s.span_id: s for s in spans}
    parent = span.parent_span_id
    while parent:
        if parent == ancestor_id:
            return True
        parent = index[parent].parent_span_id if parent in index else ""
    return False


def assert_continues_gateway_trace(
    spans: list[ReceivedSpan], trace_id: str, parent: str, request_id: str, db_system: str
) -> ReceivedSpan:
    mine = in_trace(spans, trace_id)
    [server] = [s for s in mine if s.kind == SERVER]
    assert server.service_name == "auth-backend"
    assert server.parent_span_id == parent
    assert server.trace_state == f"kong={parent}"
    assert server.attributes["http.response.header.x-request-id"] == [request_id]
    db_spans = [s for s in mine if s.scope_name in DB_SCOPES]
    assert db_spans
    assert {DB_SCOPES[s.scope_name] for s in db_spans} == {db_system}
    assert {s.attributes["db.system"] for s in db_spans} == {db_system}
    assert all(descends_from(s, server.span_id, mine) for s in db_spans)
    return server


def log_entries(backend: Backend) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in backend.log.read_text(errors="replace").splitlines()
        if line.startswith("{")
    ]


def register(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    email = f"trace-{uuid.uuid4().hex[:12]}@example.com"
    return client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}, headers=headers
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def events_stream() -> Iterator[str]:
    name = f"test.auth.events.{uuid.uuid4().hex}"
    yield name
    if redis_unavailable(REDIS_TEST_URL) is None:
        conn = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2)
        conn.delete(name)
        conn.close()


@pytest.fixture(scope="module")
def traced_backend(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver, events_stream: str
) -> Iterator[Backend]:
    with running_backend(
        tmp_path_factory.mktemp("traced-backend"),
        otel_env(receiver.endpoint, EVENTS_STREAM=events_stream),
    ) as backend:
        yield backend


def test_gunicorn_continues_the_gateway_trace_down_to_the_database(traced_backend, receiver):
    trace_id, parent, headers = new_trace()
    with httpx.Client(base_url=traced_backend.url, timeout=10) as client:
        response = register(client, headers)
    assert response.status_code == 202, response.text

    spans = receiver.wait_for(has_server_and_db(trace_id))

    server = assert_continues_gateway_trace(
        spans, trace_id, parent, headers["X-Request-ID"], "sqlite"
    )
    assert server.name == "POST /api/auth/register"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 202
    assert server.resource["service.name"] == "auth-backend"
    statements = " ".join(str(s.attributes.get("db.statement")) for s in in_trace(spans, trace_id))
    assert "INSERT" in statements
    assert PASSWORD not in json.dumps([s.attributes for s in spans])


def test_gunicorn_login_span_and_log_lines_share_the_trace(traced_backend, receiver):
    trace_id, parent, headers = new_trace()
    with httpx.Client(base_url=traced_backend.url, timeout=10) as client:
        response = client.post(
            "/api/auth/login",
            headers=headers,
            json={"email": "nobody@example.com", "password": "x" * 12},
        )
    assert response.status_code == 401

    spans = receiver.wait_for(
        lambda s: (
            any(x.name == "accounts.login" for x in in_trace(s, trace_id))
            and has_server_and_db(trace_id)(s)
        )
    )
    server = assert_continues_gateway_trace(
        spans, trace_id, parent, headers["X-Request-ID"], "sqlite"
    )
    [login] = [s for s in in_trace(spans, trace_id) if s.name == "accounts.login"]
    assert login.parent_span_id == server.span_id
    assert login.attributes["auth.outcome"] == "invalid_credentials"
    assert "nobody@example.com" not in json.dumps([s.attributes for s in spans])

    deadline = time.monotonic() + 5
    while True:
        lines = [
            e for e in log_entries(traced_backend) if e.get("request_id") == headers["X-Request-ID"]
        ]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {e["logger"] for e in lines} >= {"django.request", "gunicorn.access"}, lines
    assert {e["trace_id"] for e in lines} == {trace_id}
    [warning] = [e for e in lines if e["logger"] == "django.request"]
    assert warning["span_id"] == server.span_id


@pytest.mark.redis
def test_the_relay_process_exports_its_batches(traced_backend, receiver, events_stream):
    require(redis_unavailable(REDIS_TEST_URL))
    _, _, headers = new_trace()
    with httpx.Client(base_url=traced_backend.url, timeout=10) as client:
        assert register(client, headers).status_code == 202  # USER_REGISTERED in the outbox

    out = traced_backend.manage("relay_outbox", "--once")
    traced_backend.manage("relay_outbox", "--once")  # an idle poll: nothing left to publish

    assert "published" in out
    spans = receiver.wait_for(lambda s: any(x.name == "events.relay" for x in s))
    # SQLite opens the relay's transaction with a "BEGIN IMMEDIATE" statement: an idle poll
    # must not leave it (or its SELECT) behind as a root span.
    roots = [s.name for s in spans if s.parent_span_id == "" and s.scope_name in DB_SCOPES]
    assert roots == [], roots
    relay = next(s for s in spans if s.name == "events.relay")
    assert relay.service_name == "auth-backend"
    assert relay.attributes["messaging.destination.name"] == events_stream
    assert relay.attributes["events.published"] >= 1
    assert any(s.name == "XADD" and s.parent_span_id == relay.span_id for s in spans)


@pytest.mark.postgres
def test_gunicorn_on_postgres_traces_psycopg(postgres_url, tmp_path, receiver):
    name = f"tracing_{uuid.uuid4().hex[:12]}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with running_backend(
            tmp_path, otel_env(receiver.endpoint, DATABASE_URL=database_url)
        ) as backend:
            trace_id, parent, headers = new_trace()
            with httpx.Client(base_url=backend.url, timeout=10) as client:
                assert register(client, headers).status_code == 202
            spans = receiver.wait_for(has_server_and_db(trace_id))
            assert_continues_gateway_trace(
                spans, trace_id, parent, headers["X-Request-ID"], "postgresql"
            )
    finally:
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(backend: Backend) -> list[tuple[int, Any, dict[str, str]]]:
    """The same requests with the same ids: statuses, bodies, headers (minus the clock's)."""
    _, _, headers = new_trace()
    headers["X-Request-ID"] = "req-same"
    answers = []
    with httpx.Client(base_url=backend.url, timeout=10) as client:
        for method, path, body, host in (
            ("GET", "/api/auth/health/live/", None, None),
            ("GET", "/api/auth/health/live/", None, "evil.example"),  # not in ALLOWED_HOSTS
            (
                "POST",
                "/api/auth/login",
                {"email": "nobody@example.com", "password": "x" * 12},
                None,
            ),
            ("POST", "/api/auth/register", {"email": "not-an-email", "password": PASSWORD}, None),
        ):
            # That export never holds a request is asserted in-process, on the thread exports
            # run on (backend/tests/test_tracing.py); the client's timeout is the hang guard.
            response = client.request(
                method, path, json=body, headers={**headers, **({"Host": host} if host else {})}
            )
            answers.append(
                (
                    response.status_code,
                    response.json(),
                    {k: v for k, v in response.headers.items() if k not in ("date", "expires")},
                )
            )
    return answers


@pytest.fixture(scope="module")
def untraced_answers(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """:func:`_answers` of the backend with tracing off."""
    with running_backend(
        tmp_path_factory.mktemp("untraced-backend"), {"OTEL_SDK_DISABLED": "true"}
    ) as plain:
        return _answers(plain)


@pytest.mark.parametrize("collector", ["refused", "hung"])
def test_a_collector_that_is_down_changes_no_response(
    collector, tmp_path: Path, silent_server, untraced_answers
):
    baseline = untraced_answers
    port = closed_port() if collector == "refused" else silent_server
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    down = running_backend(
        tmp_path,
        otel_env(
            endpoint,
            OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="1",  # seconds, as the Python SDK reads it
            OTEL_BSP_MAX_QUEUE_SIZE="16",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
        ),
    )
    with down as backend:
        for _ in range(3):  # the export thread is failing meanwhile
            assert _answers(backend) == baseline
            time.sleep(0.2)
    # Workers flush for a bounded time at exit: the collector cannot hold a restart. The
    # runner's SIGTERM is followed by a SIGKILL only if the backend is still there 15 s later
    # (tests/support/backend.py), far beyond the flush's bound: exiting by itself is the proof.
    assert backend.proc is not None and backend.proc.returncode == 0, backend.proc
    assert [status for status, _, _ in baseline] == [200, 400, 401, 400]
