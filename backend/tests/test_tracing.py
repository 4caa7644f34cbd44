"""Backend tracing (auth_backend.core.tracing): spans exported to a real OTLP/HTTP receiver.

Tracing is configured in this process by the ``traced`` fixture and torn down after each
test (instrumentation removed, provider shut down); spans travel over HTTP as OTLP protobuf
to :class:`tests.support.otlp_receiver.OtlpReceiver`, which decodes them with the official protobuf
definitions. Nothing in the exporter is mocked. The request tests that need database spans
run on a fresh PostgreSQL database (``postgres_default``) so the connection is opened after
psycopg is instrumented.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3.dbapi2
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import psycopg
import pytest
import redis
from accounts_support import PASSWORD, make_user
from django.conf import settings as django_settings
from django.db import connections
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from auth_backend.accounts.exceptions import InvalidCredentials
from auth_backend.core import tracing
from auth_backend.core.logs import GunicornJsonFormatter, JsonFormatter
from auth_backend.core.request_id import current_request_id
from auth_backend.events.relay import publish_batch
from auth_backend.events.services import EventType, record_event
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.services import closed_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{GATEWAY_SPAN_ID}-01"
TRACESTATE = "kong=00f067aa0ba902b7,rojo=00f067aa0ba902b7"
OTEL_MIDDLEWARE = DjangoInstrumentor._opentelemetry_middleware
SERVER, INTERNAL, CLIENT = 2, 1, 3  # OTLP SpanKind
PSYCOPG_SCOPE = "opentelemetry.instrumentation.psycopg"
REDIS_SCOPE = "opentelemetry.instrumentation.redis"


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``otel_env(**variables)``: the process environment has exactly these ``OTEL_*``
    variables for the test (the SDK reads them from ``os.environ``)."""
    for name in list(os.environ):
        if name.startswith("OTEL_") and name != "OTEL_SEMCONV_STABILITY_OPT_IN":
            monkeypatch.delenv(name)
    monkeypatch.delenv("SERVICE_NAME", raising=False)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


@pytest.fixture
def traced(django_db_blocker: Any, otel_env: Callable[..., None]) -> Iterator[Callable[..., bool]]:
    """``traced(endpoint, **OTEL_vars)`` switches tracing on in this process for the test."""

    def configure(endpoint: str, **env: str) -> bool:
        otel_env(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            **env,
        )
        assert tracing.configure_tracing()
        # Connections opened before psycopg was instrumented would not be traced.
        with django_db_blocker.unblock():
            connections.close_all()
        return True

    yield configure
    tracing.shutdown_tracing()


def flush() -> None:
    assert tracing.force_flush()


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = by_name(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def server_span(spans: list[ReceivedSpan]) -> ReceivedSpan:
    [span] = [s for s in spans if s.kind == SERVER]
    return span


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[str]:
    """Span ids from ``span``'s parent up to the root of its trace (in what was received)."""
    index = {s.span_id: s for s in spans}
    chain, parent = [], span.parent_span_id
    while parent in index:
        chain.append(parent)
        parent = index[parent].parent_span_id
    return chain


def login(
    client: Any, email: str = "alice@example.com", password: str = PASSWORD, **headers: str
) -> Any:
    return client.post(
        "/api/auth/login",
        {"email": email, "password": password},
        content_type="application/json",
        **headers,
    )


def gateway_headers(request_id: str = "req-trace-1", traceparent: str = TRACEPARENT) -> dict:
    return {
        "HTTP_TRACEPARENT": traceparent,
        "HTTP_TRACESTATE": TRACESTATE,
        "HTTP_X_REQUEST_ID": request_id,
    }


class JsonLines(logging.Handler):
    """The root logger's records as the project's JSON lines."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter(service="auth-backend"))
        self.stream = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    handler = JsonLines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def instrumented() -> dict[str, bool]:
    return {
        "django": OTEL_MIDDLEWARE in django_settings.MIDDLEWARE,
        "psycopg": hasattr(psycopg.connect, "__wrapped__"),
        "sqlite": hasattr(sqlite3.dbapi2.connect, "__wrapped__"),
        "redis": hasattr(redis.Redis.execute_command, "__wrapped__"),
    }


# --- off by default ------------------------------------------------------------------------


def test_tracing_is_off_without_an_endpoint_and_installs_nothing(client, db, json_logs, otel_env):
    assert tracing.configure_tracing() is False
    assert not tracing.is_enabled()
    assert instrumented() == dict.fromkeys(("django", "psycopg", "sqlite", "redis"), False)

    with tracing.span("accounts.login") as span:
        assert not span.is_recording()
    tracing.set_attributes({"auth.outcome": "success"})  # no-op, no error
    response = login(client, email="nobody@example.com", **gateway_headers())

    assert response.status_code == 401
    assert not tracing.force_flush()
    assert json_logs.entries()  # django.request's 401 warning
    assert all("trace_id" not in e and "span_id" not in e for e in json_logs.entries())


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "none"},
    ],
    ids=["sdk-disabled", "exporter-none"],
)
def test_standard_switches_turn_it_off_despite_an_endpoint(env, otel_env):
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **env}
    otel_env(**environ)

    assert tracing.exporter_configured(environ) is None
    assert tracing.configure_tracing() is False
    assert not any(instrumented().values())


def test_an_exporter_is_configured_by_an_http_endpoint():
    assert tracing.exporter_configured({}) is None
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert tracing.exporter_configured(base) == "http://collector:4318/"
    traces = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}
    assert tracing.exporter_configured(traces) == "http://jaeger:4318/v1/traces"
    assert tracing.exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}) is None


def test_the_sdk_reads_the_standard_variables(otel_env):
    """Endpoint, sampler, batch processor and service name come from the SDK's own reading
    of the environment; the service is ours by default."""
    otel_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://jaeger:4318/v1/traces",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.25",
        OTEL_BSP_MAX_QUEUE_SIZE="100",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="50",
        OTEL_SERVICE_NAME="edge-auth",
    )
    assert tracing.configure_tracing()
    try:
        provider = tracing._state.provider
        assert provider.resource.attributes["service.name"] == "edge-auth"
        assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()
        assert "ParentBased" in provider.sampler.get_description()
        assert tracing._state.exporter._endpoint == "http://jaeger:4318/v1/traces"
    finally:
        tracing.shutdown_tracing()


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "auth-backend"), ({"SERVICE_NAME": "auth-backend-eu"}, "auth-backend-eu")],
)
def test_the_service_name_defaults_to_ours(env, expected, otel_env, monkeypatch):
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.configure_tracing(span_processor=SimpleSpanProcessor(InMemorySpanExporter()))
    try:
        assert tracing._state.provider.resource.attributes["service.name"] == expected
    finally:
        tracing.shutdown_tracing()


# --- a request through the instrumented backend --------------------------------------------


@pytest.mark.postgres
def test_request_continues_the_gateway_trace_with_db_and_login_spans(
    postgres_default, traced, receiver, client
):
    make_user()
    traced(receiver.endpoint)
    assert all(instrumented().values())

    response = login(client, **gateway_headers("req-trace-1"))

    assert response.status_code == 200
    flush()
    spans = receiver.wait_for(
        lambda s: any(x.kind == SERVER for x in s) and by_name(s, "accounts.login")
    )
    assert {s.trace_id for s in spans} == {TRACE_ID}
    assert {s.service_name for s in spans} == {"auth-backend"}

    server = server_span(spans)
    assert server.parent_span_id == GATEWAY_SPAN_ID
    assert server.flags & 0x100  # parent is remote (the gateway)
    assert "rojo=00f067aa0ba902b7" in server.trace_state
    assert server.name == "POST /api/auth/login"
    assert server.attributes["http.request.method"] == "POST"  # stable HTTP semconv
    assert server.attributes["http.route"] == "/api/auth/login"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.response.header.x-request-id"] == ["req-trace-1"]
    assert "http.method" not in server.attributes

    login_span = one(spans, "accounts.login")
    assert login_span.parent_span_id == server.span_id
    assert (login_span.scope_name, login_span.kind) == ("auth_backend", INTERNAL)
    assert login_span.attributes["auth.method"] == "password"
    assert login_span.attributes["auth.outcome"] == "success"
    issue = one(spans, "tokens.issue")
    assert issue.parent_span_id == login_span.span_id
    assert issue.attributes["auth.amr"] == ["pwd"]
    assert issue.attributes["tokens.grant"] == "login"

    db_spans = [s for s in spans if s.scope_name == PSYCOPG_SCOPE]
    assert db_spans
    assert all(s.kind == CLIENT and s.trace_id == TRACE_ID for s in db_spans)
    assert all(server.span_id in ancestors(s, spans) for s in db_spans)
    assert any(s.parent_span_id == issue.span_id for s in db_spans)  # the token INSERTs
    assert {
        s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in db_spans
    } == {"postgresql"}

    everything = json.dumps([[s.name, s.attributes] for s in spans])
    assert "alice@example.com" not in everything
    assert PASSWORD not in everything
    assert response.json()["access_token"] not in everything
    assert response.json()["refresh_token"] not in everything


@pytest.mark.postgres
def test_an_expected_failure_is_an_outcome_not_an_error(postgres_default, traced, receiver, client):
    traced(receiver.endpoint)

    response = login(client, email="nobody@example.com", **gateway_headers())

    assert response.status_code == 401
    flush()
    spans = receiver.wait_for(
        lambda s: by_name(s, "accounts.login") and any(x.kind == SERVER for x in s)
    )
    login_span = one(spans, "accounts.login")
    assert login_span.attributes["auth.outcome"] == "invalid_credentials"
    assert login_span.status_code == StatusCode.UNSET.value
    assert "error.type" not in login_span.attributes
    assert server_span(spans).attributes["http.response.status_code"] == 401
    assert "nobody@example.com" not in json.dumps([s.attributes for s in spans])


@pytest.mark.django_db
def test_a_request_without_traceparent_starts_its_own_trace(traced, receiver, client):
    traced(receiver.endpoint)

    response = client.get("/api/auth/health/live/")

    assert response.status_code == 200
    flush()
    spans = receiver.wait_for(lambda s: any(x.kind == SERVER for x in s))
    server = server_span(spans)
    assert server.parent_span_id == ""
    assert server.trace_id != TRACE_ID and len(server.trace_id) == 32


@pytest.mark.django_db
def test_the_gateways_sampling_decision_is_respected(traced, receiver, client, json_logs):
    traced(receiver.endpoint)
    unsampled = f"00-{TRACE_ID}-{GATEWAY_SPAN_ID}-00"

    response = login(
        client,
        email="nobody@example.com",
        **gateway_headers("req-unsampled", traceparent=unsampled),
    )
    client.get("/api/auth/health/live/")  # sampled: proves the exporter works

    assert response.status_code == 401
    flush()
    spans = receiver.wait_for(lambda s: any(x.kind == SERVER for x in s))
    assert TRACE_ID not in {s.trace_id for s in spans}
    # The logs still name the gateway's trace, so they correlate with its logs.
    [warning] = [e for e in json_logs.entries() if e.get("request_id") == "req-unsampled"]
    assert warning["trace_id"] == TRACE_ID


# --- logs ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_log_lines_carry_trace_span_and_request_ids(traced, receiver, client, json_logs, settings):
    settings.GOOGLE_CLIENT_ID = "client-id.apps.googleusercontent.com"
    settings.GOOGLE_JWKS_URL = f"http://127.0.0.1:{closed_port()}/certs"
    traced(receiver.endpoint)

    id_token = jwt.encode({"sub": "g-1"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
    response = client.post(
        "/api/auth/google/login",
        {"id_token": id_token},
        content_type="application/json",
        **gateway_headers("req-logs"),
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "google_unavailable"
    flush()
    spans = receiver.wait_for(
        lambda s: by_name(s, "google.verify") and any(x.kind == SERVER for x in s)
    )
    verify, server = one(spans, "google.verify"), server_span(spans)
    google_login = one(spans, "accounts.login")
    assert google_login.attributes["auth.method"] == "google"
    assert verify.parent_span_id == google_login.span_id
    assert google_login.parent_span_id == server.span_id
    assert verify.attributes["auth.outcome"] == "google_unavailable"
    assert verify.status_code == StatusCode.UNSET.value

    entries = [e for e in json_logs.entries() if e.get("request_id") == "req-logs"]
    [fetch_failed] = [e for e in entries if e["message"] == "Google JWKS could not be fetched"]
    assert fetch_failed["trace_id"] == TRACE_ID
    assert fetch_failed["span_id"] == verify.span_id  # written inside google.verify
    # django.request logs the 503 after the tracing middleware ended the server span.
    [access] = [e for e in entries if e["logger"] == "django.request"]
    assert (access["trace_id"], access["span_id"]) == (TRACE_ID, server.span_id)


def test_json_formatter_names_the_current_span(otel_env):
    exporter = InMemorySpanExporter()
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert tracing.configure_tracing(span_processor=SimpleSpanProcessor(exporter))
    formatter = JsonFormatter()
    record = logging.LogRecord("auth_backend.test", logging.INFO, __file__, 1, "hi", None, None)
    token = current_request_id.set("req-9")
    try:
        with tracing.span("unit") as span:
            inside = json.loads(formatter.format(record))
        outside = json.loads(formatter.format(record))
    finally:
        current_request_id.reset(token)
        tracing.shutdown_tracing()

    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["request_id"] == outside["request_id"] == "req-9"
    assert "trace_id" not in outside and "span_id" not in outside


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (f"00-{'0' * 32}-{GATEWAY_SPAN_ID}-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_gunicorn_access_lines_carry_the_requests_trace_id(traceparent, expected):
    atoms = {"m": "GET", "U": "/api/auth/health/live/", "s": "200", "{x-request-id}o": "r-1"}
    if traceparent is not None:
        atoms["{traceparent}i"] = traceparent
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(h)s", None, None)
    record.args = atoms

    entry = json.loads(GunicornJsonFormatter().format(record))

    assert entry.get("trace_id") == expected
    assert entry["request_id"] == "r-1"
    assert "span_id" not in entry


# --- custom span semantics -----------------------------------------------------------------


@pytest.fixture
def memory_spans(otel_env: Callable[..., None]) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert tracing.configure_tracing(span_processor=SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown_tracing()


def test_an_unexpected_exception_is_an_error_without_its_message(memory_spans):
    email = "alice@example.com"
    with pytest.raises(RuntimeError), tracing.span("tokens.issue"):
        raise RuntimeError(f"duplicate key (email)=({email})")
    with pytest.raises(InvalidCredentials), tracing.span("accounts.login"):
        raise InvalidCredentials()

    failed, expected = memory_spans.get_finished_spans()
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "builtins.RuntimeError"
    [event] = failed.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "builtins.RuntimeError"
    assert "test_tracing.py" in event.attributes["exception.stacktrace"]
    assert email not in json.dumps(
        [dict(failed.attributes), dict(event.attributes), failed.status.description]
    )
    assert expected.status.status_code == StatusCode.UNSET
    assert expected.attributes["auth.outcome"] == "invalid_credentials"
    assert not expected.events


@pytest.mark.django_db
def test_refresh_rotation_and_reuse_spans(memory_spans, client):
    make_user()
    pair = login(client).json()
    rotated = client.post(
        "/api/auth/token/refresh",
        {"refresh_token": pair["refresh_token"]},
        content_type="application/json",
    )
    reused = client.post(
        "/api/auth/token/refresh",
        {"refresh_token": pair["refresh_token"]},
        content_type="application/json",
    )

    assert (rotated.status_code, reused.status_code) == (200, 401)
    spans = memory_spans.get_finished_spans()
    first, second = [s for s in spans if s.name == "tokens.refresh"]
    [issued] = [
        s
        for s in spans
        if s.name == "tokens.issue" and s.attributes["tokens.grant"] == "refresh_token"
    ]
    assert issued.parent.span_id == first.context.span_id
    assert tuple(issued.attributes["auth.amr"]) == ("pwd",)
    assert "auth.outcome" not in first.attributes
    assert second.attributes["tokens.revoked"] == "reuse"
    assert second.attributes["auth.outcome"] == reused.json()["error"]["code"]
    assert second.status.status_code == StatusCode.UNSET
    everything = json.dumps([dict(s.attributes) for s in spans])
    assert pair["refresh_token"] not in everything
    assert rotated.json()["refresh_token"] not in everything


def test_configure_is_idempotent_and_shutdown_removes_the_instrumentation(memory_spans, otel_env):
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://other:4318")
    assert tracing.configure_tracing()
    assert all(instrumented().values())
    middleware = list(django_settings.MIDDLEWARE)
    assert middleware.count(OTEL_MIDDLEWARE) == 1
    # Right before the first middleware that checks the Host (responses stay the same).
    common = middleware.index("django.middleware.common.CommonMiddleware")
    assert middleware[common - 1] == OTEL_MIDDLEWARE

    tracing.shutdown_tracing()

    assert not tracing.is_enabled()
    assert not any(instrumented().values())
    assert OTEL_MIDDLEWARE not in django_settings.MIDDLEWARE


# --- the collector is down -----------------------------------------------------------------


def _exchange(client: Any) -> list[tuple[int, Any, dict[str, str]]]:
    """A few requests; their statuses, bodies and headers (minus the clock's)."""
    answers = []
    for response in (
        client.get("/api/auth/health/live/", **gateway_headers("req-a")),
        # Rejected by Django before any view: still the JSON error shape and the request id.
        client.get(
            "/api/auth/health/live/", HTTP_HOST="evil.example", **gateway_headers("req-host")
        ),
        login(client, email="nobody@example.com", **gateway_headers("req-b")),
        login(client, **gateway_headers("req-c")),
    ):
        body = response.json()
        for secret in ("access_token", "refresh_token"):  # fresh each time, compare shape
            if secret in body:
                body[secret] = "…"
        headers = {
            k: v for k, v in response.headers.items() if k.lower() not in ("date", "expires")
        }
        answers.append((response.status_code, body, headers))
    return answers


@pytest.mark.parametrize("collector", ["refused", "hung"])
@pytest.mark.django_db
def test_a_collector_that_is_down_changes_no_response(
    collector, client, silent_server, json_logs, otel_env
):
    make_user()
    baseline = _exchange(client)
    port = closed_port() if collector == "refused" else silent_server
    otel_env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces",
        OTEL_BSP_SCHEDULE_DELAY="10",
        OTEL_BSP_MAX_QUEUE_SIZE="8",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="1",  # seconds, as the Python SDK reads it
    )
    assert tracing.configure_tracing()
    exporter = tracing._state.exporter
    # What bounds one export: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, as the SDK read it.
    assert exporter._client._timeout == 1
    exporting_threads = []
    real_export = exporter.export

    def recording_export(spans):
        exporting_threads.append(threading.current_thread())
        return real_export(spans)

    exporter.export = recording_export
    try:
        from django.test import Client

        traced_client = Client()  # picks up the tracing middleware
        for _ in range(3):
            assert _exchange(traced_client) == baseline
        # Requests never wait for the collector: no export ran on the request's thread
        # (asserted on where exports run, not on how long requests took) …
        assert threading.current_thread() not in exporting_threads
        tracing.force_flush(100)
        assert exporting_threads  # … and the spans did go to the (down) collector
        tracing.shutdown_tracing(timeout_seconds=1.5)
        # Shutdown gives up on the collector: the exporter is stopped, it retries no more.
        assert exporter._shutdown
        # Each failure message of the exporter is logged once a minute, not per batch.
        failures = [
            (e["level"], e["message"])
            for e in json_logs.entries()
            if e["logger"] == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
            and not e["message"].startswith("Transient error")
        ]  # carries the delay
        assert len(failures) == len(set(failures)), failures
    finally:
        tracing.shutdown_tracing()


# --- the outbox relay ----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_each_relay_batch_is_a_span_and_idle_polls_leave_none(
    postgres_default, redis_url, redis_conn, stream, traced, receiver, django_db_blocker
):
    traced(receiver.endpoint)
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        with django_db_blocker.unblock():
            connections["default"].ensure_connection()  # its set-up queries are traced
        flush()
        receiver.wait_for(lambda s: len(s) > 0)
        receiver.spans.clear()

        assert publish_batch(client, stream=stream).published == []  # idle poll
        flush()
        time.sleep(0.2)
        assert receiver.spans == [], [(s.name, s.attributes) for s in receiver.spans]

        record_event(EventType.USER_REGISTERED, subject_id=str(uuid.uuid4()), method="password")
        result = publish_batch(client, stream=stream)
    finally:
        client.close()

    assert len(result.published) == 1
    flush()
    spans = receiver.wait_for(lambda s: by_name(s, "events.relay") and by_name(s, "XADD"))
    relay = one(spans, "events.relay")
    assert relay.parent_span_id == ""  # a trace of its own
    assert relay.attributes["messaging.destination.name"] == stream
    assert relay.attributes["messaging.batch.message_count"] == 1
    assert relay.attributes["events.published"] == 1
    assert relay.attributes["events.failed"] == 0
    xadd = one(spans, "XADD")
    assert xadd.scope_name == REDIS_SCOPE
    assert xadd.parent_span_id == relay.span_id
    # The UPDATE that marks the row published is part of the batch.
    assert any(s.scope_name == PSYCOPG_SCOPE and s.parent_span_id == relay.span_id for s in spans)
    # Besides the batch, only the test's own INSERT of the event: the idle poll left nothing.
    assert [s.name for s in spans if s.trace_id != relay.trace_id] == ["INSERT"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_relay_command_switches_tracing_on_and_off(
    receiver, redis_url, stream, monkeypatch, otel_env
):
    from django.core.management import call_command

    record_event(EventType.USER_REGISTERED, subject_id=str(uuid.uuid4()), method="password")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)

    call_command("relay_outbox", "--once", stdout=io.StringIO())

    assert not tracing.is_enabled()  # flushed and switched off when the command ended
    assert not any(instrumented().values())
    spans = receiver.wait_for(lambda s: by_name(s, "events.relay"))
    relay = one(spans, "events.relay")
    assert relay.attributes["events.published"] == 1
    assert any(s.name == "XADD" and s.parent_span_id == relay.span_id for s in spans)
