"""OpenTelemetry tracing: OTLP/HTTP export, Django/DB/Redis instrumentation, custom spans.

Tracing is **optional and off by default**. It is switched on, once per process, by
:func:`configure_tracing` — called by the gunicorn worker after the fork
(``backend/gunicorn.conf.py``), by ``wsgi.py`` for any other WSGI server, and by
``manage.py relay_outbox`` — when an OTLP endpoint is configured with the standard variables:

``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    The full traces URL, e.g. ``http://localhost:4318/v1/traces``; or
``OTEL_EXPORTER_OTLP_ENDPOINT``
    The collector's base URL, e.g. ``http://localhost:4318`` (``/v1/traces`` is appended).
    Neither set: tracing stays off (nothing is instrumented, nothing is exported).
``OTEL_SDK_DISABLED=true`` / ``OTEL_TRACES_EXPORTER=none``
    Off even with an endpoint.
``OTEL_SERVICE_NAME``
    Default ``$SERVICE_NAME``, else ``auth-backend``; ``OTEL_RESOURCE_ATTRIBUTES`` adds more.
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``
    Default ``parentbased_always_on``: a request carrying the gateway's ``traceparent`` is
    recorded exactly when the gateway sampled it; a request without one starts a new trace.
``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT``
    Milliseconds (as the OTel specification defines them) an export may take, retries
    included; default 2000.
``OTEL_BSP_MAX_QUEUE_SIZE`` (2048), ``OTEL_BSP_SCHEDULE_DELAY`` (5000 ms),
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512)
    The batch span processor. Spans are queued in memory and exported by a background
    thread; when the collector is down or slow the bounded queue drops the oldest spans, so
    requests never wait for the collector. At exit, flushing waits at most a few seconds.
``OTEL_EXPORTER_OTLP_HEADERS``, ``…_COMPRESSION``, ``…_CERTIFICATE``
    Read by the OTLP exporter as usual. ``OTEL_PROPAGATORS`` (default W3C ``tracecontext``
    + ``baggage``) decides which incoming headers continue a trace.

What gets traced:

* every Django request (server span, stable HTTP semantic conventions — ``http.request.method``,
  ``http.route`` as a path template such as ``/api/auth/login``,
  ``http.response.status_code`` — via ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` unless set
  otherwise), continuing the caller's ``traceparent``/``tracestate``; the request id sent back
  as ``X-Request-ID`` is recorded as ``http.response.header.x-request-id``. The tracing
  middleware sits right before ``CommonMiddleware`` (see ``_tracing_middleware_position``):
  its span covers authentication, the view and everything after; static files served by
  WhiteNoise are not traced. ``OTEL_PYTHON_DJANGO_EXCLUDED_URLS`` (comma-separated regexes)
  leaves more URLs untraced, e.g. ``health/`` for probes;
* database queries, as child spans of whatever is current: PostgreSQL (psycopg) and SQLite
  (the DB-API integration), statement text only, never parameter values;
* Redis commands (sanitised: ``XADD ? ? …``);
* our own spans, tracer ``auth_backend``: ``accounts.login``, ``tokens.issue``,
  ``tokens.refresh``, ``google.verify``, ``events.relay`` (one per non-empty outbox batch).
  They carry no secrets, emails or passwords. An *expected* failure (a DRF ``APIException``
  such as ``invalid_credentials``, a validation error) is an outcome, recorded as
  ``auth.outcome``; only an unexpected exception marks the span as an error (``error.type``
  and an ``exception`` event with the exception type and stack, never its message).

Log lines carry ``trace_id`` and ``span_id`` (:mod:`auth_backend.core.logs`). For operators:
``backend/docs/tracing.md``.

Use :func:`span` / :func:`traced` for custom spans, not ``opentelemetry.trace.get_tracer``:
this module does not install a global tracer provider (so tests can configure and reset
tracing any number of times in one process); everything it instruments is given its own
provider explicitly.

Importing this module is cheap (the OpenTelemetry API only); the SDK, the exporter and the
instrumentations are imported when tracing is switched on.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

logger = logging.getLogger(__name__)

TRACER_NAME = "auth_backend"
DEFAULT_SERVICE_NAME = "auth-backend"
DEFAULT_EXPORT_TIMEOUT_MS = 2000
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 5.0
# Attribute of a Django request holding its server span's context, for log lines written
# after the tracing middleware has already ended the span (Django's "django.request" logger).
REQUEST_SPAN_CONTEXT_ATTR = "otel_span_context"

_TRUE = frozenset({"1", "true", "yes", "on"})
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)

F = TypeVar("F", bound=Callable[..., Any])


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class TracingConfig:
    """What :func:`configure_tracing` sets up, read from ``OTEL_*`` variables."""

    endpoint: str
    service_name: str = DEFAULT_SERVICE_NAME
    sampler: str = "parentbased_always_on"
    sampler_arg: float | None = None
    export_timeout_seconds: float = DEFAULT_EXPORT_TIMEOUT_MS / 1000
    max_queue_size: int = 2048
    schedule_delay_millis: int = 5000
    max_export_batch_size: int = 512


def _get(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(environ, name)
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("tracing: %s=%r is not a positive number; using %s", name, raw, default)
        return default
    return value


def traces_endpoint(environ: Mapping[str, str]) -> str:
    """The OTLP/HTTP traces URL from the environment, or ``""`` when none is configured."""
    endpoint = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint:
        return endpoint
    base = _get(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else ""


def tracing_config(environ: Mapping[str, str] | None = None) -> TracingConfig | None:
    """The tracing configuration, or ``None`` when tracing is off."""
    environ = os.environ if environ is None else environ
    if _get(environ, "OTEL_SDK_DISABLED").lower() in _TRUE:
        return None
    exporter = _get(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter == "none":
        return None
    if exporter and exporter != "otlp":
        logger.warning("tracing: OTEL_TRACES_EXPORTER=%s is not supported; using otlp", exporter)
    endpoint = traces_endpoint(environ)
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        logger.warning("tracing: the OTLP endpoint is not an http(s) URL; tracing is off")
        return None
    protocol = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _get(
        environ, "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol and protocol != "http/protobuf":
        logger.warning("tracing: OTLP protocol %s is not supported; using http/protobuf", protocol)
    sampler = _get(environ, "OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on"
    if sampler not in _SAMPLERS:
        logger.warning(
            "tracing: unknown OTEL_TRACES_SAMPLER=%s; using parentbased_always_on", sampler
        )
        sampler = "parentbased_always_on"
    sampler_arg = None
    if sampler.endswith("traceidratio"):
        try:
            sampler_arg = min(max(float(_get(environ, "OTEL_TRACES_SAMPLER_ARG") or 1.0), 0.0), 1.0)
        except ValueError:
            logger.warning("tracing: OTEL_TRACES_SAMPLER_ARG is not a number; using 1.0")
            sampler_arg = 1.0
    timeout_ms = _positive_int(
        environ,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        if _get(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        else "OTEL_EXPORTER_OTLP_TIMEOUT",
        DEFAULT_EXPORT_TIMEOUT_MS,
    )
    max_queue_size = _positive_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    return TracingConfig(
        endpoint=endpoint,
        service_name=(
            _get(environ, "OTEL_SERVICE_NAME")
            or _get(environ, "SERVICE_NAME")
            or DEFAULT_SERVICE_NAME
        ),
        sampler=sampler,
        sampler_arg=sampler_arg,
        export_timeout_seconds=timeout_ms / 1000,
        max_queue_size=max_queue_size,
        schedule_delay_millis=_positive_int(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000),
        max_export_batch_size=min(
            _positive_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), max_queue_size
        ),
    )


# --- process state -----------------------------------------------------------------------


@dataclass
class _Tracing:
    config: TracingConfig
    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    tracer: trace.Tracer
    exporter: Any = None  # the OTLP exporter, when this module built the span processor
    uninstrument: list[Callable[[], None]] = field(default_factory=list)


# Loggers of the exporter and the batch processor: while the collector is down they would
# write a line per failed export (several a second under load).
_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk._shared_internal",
)
EXPORT_LOG_INTERVAL_SECONDS = 60.0


class _OncePerInterval(logging.Filter):
    """Let each message (level + template) through at most once per interval."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
        return True


_export_log_limiter = _OncePerInterval(EXPORT_LOG_INTERVAL_SECONDS)


def _limit_export_logs() -> None:
    for name in _EXPORT_LOGGERS:
        logging.getLogger(name).addFilter(_export_log_limiter)  # once: same filter object


_lock = threading.Lock()
_state: _Tracing | None = None
_atexit_registered = False


def is_enabled() -> bool:
    return _state is not None


def configure_tracing(
    environ: Mapping[str, str] | None = None, *, span_processor: Any = None
) -> bool:
    """Switch tracing on for this process if the environment asks for it; ``True`` if on.

    Idempotent: a second call (e.g. ``wsgi.py`` after gunicorn's ``post_fork`` hook) does
    nothing. ``environ`` defaults to ``os.environ``; ``span_processor`` replaces the OTLP
    batch processor (tests). Never raises: a failure is logged and leaves tracing off.

    Under gunicorn, call it in the worker (``post_fork``), not in the master: the batch
    processor's export thread must belong to the process that produces the spans.
    """
    global _state, _atexit_registered
    with _lock:
        if _state is not None:
            return True
        config = tracing_config(environ)
        if config is None:
            return False
        try:
            _state = _start(config, span_processor)
        except Exception:
            logger.exception("tracing: could not be configured; continuing without it")
            return False
        if not _atexit_registered:
            atexit.register(shutdown_tracing)
            _atexit_registered = True
    logger.info(
        "tracing: exporting spans to %s as %s",
        _redact(config.endpoint),
        config.service_name,
        extra={"otel_endpoint": _redact(config.endpoint)},
    )
    return True


def _redact(url: str) -> str:
    """``url`` without credentials, query or fragment (safe to log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _sampler(config: TracingConfig) -> Any:
    from opentelemetry.sdk.trace import sampling

    ratio = 1.0 if config.sampler_arg is None else config.sampler_arg
    return {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }[config.sampler]()


def _service_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("auth-backend")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return ""


def _start(config: TracingConfig, span_processor: Any) -> _Tracing:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {"service.name": config.service_name}
    service_version = _service_version()
    if service_version:
        attributes["service.version"] = service_version
    provider = TracerProvider(
        resource=Resource.create(attributes), sampler=_sampler(config), shutdown_on_exit=False
    )
    exporter = None
    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=config.endpoint, timeout=config.export_timeout_seconds)
        span_processor = BatchSpanProcessor(
            exporter,
            max_queue_size=config.max_queue_size,
            schedule_delay_millis=config.schedule_delay_millis,
            max_export_batch_size=config.max_export_batch_size,
        )
    provider.add_span_processor(span_processor)
    state = _Tracing(
        config=config,
        provider=provider,
        exporter=exporter,
        tracer=provider.get_tracer(TRACER_NAME, service_version or None),
    )
    _limit_export_logs()
    try:
        _instrument(state)
    except Exception:
        for undo in reversed(state.uninstrument):
            undo()
        provider.shutdown()
        raise
    return state


def _instrument(state: _Tracing) -> None:
    # Stable HTTP attribute names (http.request.method, ...). The instrumentations
    # read this once per process, when the first of them is instrumented.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    # The Django instrumentation reads settings.MIDDLEWARE; without a settings module it
    # would configure empty settings.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_backend.settings")
    provider = state.provider

    from opentelemetry.instrumentation.django import DjangoInstrumentor

    django = DjangoInstrumentor()
    # See _tracing_middleware_position: responses must not change with tracing on.
    django.instrument(
        tracer_provider=provider,
        request_hook=_request_hook,
        response_hook=_response_hook,
        middleware_position=_tracing_middleware_position(),
    )
    state.uninstrument.append(django.uninstrument)

    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    psycopg = PsycopgInstrumentor()
    psycopg.instrument(tracer_provider=provider)
    state.uninstrument.append(psycopg.uninstrument)

    # SQLite (local runs, `make run`): Django connects through sqlite3.dbapi2.connect.
    import sqlite3.dbapi2

    from opentelemetry.instrumentation import dbapi

    dbapi.wrap_connect(
        "opentelemetry.instrumentation.dbapi",
        sqlite3.dbapi2,
        "connect",
        "sqlite",
        {},
        tracer_provider=provider,
    )
    state.uninstrument.append(lambda: dbapi.unwrap_connect(sqlite3.dbapi2, "connect"))

    from opentelemetry.instrumentation.redis import RedisInstrumentor

    redis = RedisInstrumentor()
    redis.instrument(tracer_provider=provider)
    state.uninstrument.append(redis.uninstrument)


# The tracing middleware reads the request's host first thing (request.build_absolute_uri),
# which raises DisallowedHost for a Host not in ALLOWED_HOSTS. Without tracing the first to
# do so is CommonMiddleware; the tracing middleware goes right before it, so such a request
# is answered exactly as without tracing (a JSON 400 with the request id and the security
# headers of the middleware outside). Otherwise: inside these, which must stay outermost.
_FIRST_HOST_CHECK = "django.middleware.common.CommonMiddleware"
_OUTER_MIDDLEWARE = (
    "auth_backend.core.request_id.RequestIdMiddleware",
    "auth_backend.core.errors.JsonErrorMiddleware",
)


def _tracing_middleware_position() -> int:
    from django.conf import settings

    middleware = list(settings.MIDDLEWARE)
    if _FIRST_HOST_CHECK in middleware:
        return middleware.index(_FIRST_HOST_CHECK)
    return max(
        (middleware.index(name) + 1 for name in _OUTER_MIDDLEWARE if name in middleware), default=0
    )


def _request_hook(span: Span, request: Any) -> None:
    setattr(request, REQUEST_SPAN_CONTEXT_ATTR, span.get_span_context())


def _response_hook(span: Span, request: Any, response: Any) -> None:
    if not span.is_recording():
        return
    # RequestIdMiddleware (outside) sets the X-Request-ID response header afterwards.
    request_id = getattr(request, "request_id", None)
    if isinstance(request_id, str) and request_id:
        span.set_attribute("http.response.header.x-request-id", [request_id])
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if isinstance(route, str) and route:
        # Our routes are regexes (core.urls.route: "^login/?$"): name the span and
        # http.route with the path template instead, "POST /api/auth/login".
        template = http_route_template(route)
        span.set_attribute("http.route", template)
        method = str(getattr(span, "name", "") or request.method).split(" ", 1)[0]
        span.update_name(f"{method} {template}")


_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def http_route_template(route: str) -> str:
    """A Django route (``api/auth/login/?$``, ``users/(?P<user_id>[^/]+)/?$``) as a path
    template (``/api/auth/login``, ``/users/{user_id}``)."""
    template = route.replace("^", "")
    for suffix in ("/?$", "$", "/?"):
        if template.endswith(suffix):
            template = template[: -len(suffix)]
            break
    template = _NAMED_GROUP.sub(r"{\1}", template)
    template = re.sub(r"\\(.)", r"\1", template)  # "\." -> "."
    return "/" + template.lstrip("/")


def force_flush(timeout_millis: int = 5000) -> bool:
    """Export queued spans now (tests); ``False`` when tracing is off."""
    state = _state
    return bool(state and state.provider.force_flush(timeout_millis))


def shutdown_tracing(timeout_seconds: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS) -> None:
    """Remove the instrumentation, flush what is queued, stop exporting.

    Flushing waits at most ``timeout_seconds`` (a down collector must not hold up a
    worker's exit); whatever is still queued then is dropped.
    """
    global _state
    with _lock:
        state, _state = _state, None
    if state is None:
        return
    for undo in reversed(state.uninstrument):
        try:
            undo()
        except Exception:  # pragma: no cover - best effort at shutdown
            logger.debug("tracing: uninstrumenting failed", exc_info=True)
    stopper = threading.Thread(target=state.provider.shutdown, name="otel-shutdown", daemon=True)
    stopper.start()
    stopper.join(timeout_seconds)
    if stopper.is_alive():
        # The collector is down or slow: stop retrying; what is still queued is dropped.
        if state.exporter is not None:
            state.exporter.shutdown()
        stopper.join(min(timeout_seconds, 1.0))
        logger.warning(
            "tracing: spans not exported within %.1fs at shutdown were dropped", timeout_seconds
        )


# --- custom spans ------------------------------------------------------------------------


def _is_expected(exc: BaseException) -> bool:
    """A failure that is a normal answer (401, 403, 409, validation), not a fault."""
    try:
        from django.core.exceptions import PermissionDenied, ValidationError
        from django.http import Http404
        from rest_framework.exceptions import APIException
    except ImportError:  # pragma: no cover - Django not importable
        return False
    return isinstance(exc, APIException | ValidationError | PermissionDenied | Http404)


def _outcome(exc: BaseException) -> str:
    code = getattr(exc, "default_code", None)
    detail = getattr(exc, "detail", None)
    # APIException(code=...) keeps its code on the ErrorDetail.
    detail_code = getattr(detail, "code", None)
    if isinstance(detail_code, str) and detail_code:
        code = detail_code
    if isinstance(code, str) and code:
        return code
    return "validation_error" if type(exc).__name__ == "ValidationError" else "denied"


def _record_error(span: Span, exc: BaseException) -> None:
    error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    span.set_attribute("error.type", error_type)
    # No exception.message: an exception's text may carry data (an email in an
    # IntegrityError, a token in a parse error); its type and frames are enough.
    span.add_event(
        "exception",
        {
            "exception.type": error_type,
            "exception.stacktrace": "".join(traceback.format_tb(exc.__traceback__)),
        },
    )
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    start_time: int | None = None,
) -> Iterator[Span]:
    """A child span of the current one, current while the block runs.

    Off: yields a non-recording span (``set_attribute`` and friends do nothing). An expected
    exception (see the module docstring) sets ``auth.outcome``; any other sets the error
    status. Exceptions always propagate.
    """
    state = _state
    if state is None:
        yield INVALID_SPAN
        return
    with state.tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=dict(attributes) if attributes else None,
        start_time=start_time,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            if current.is_recording():
                if _is_expected(exc):
                    current.set_attribute("auth.outcome", _outcome(exc))
                else:
                    _record_error(current, exc)
            raise


def traced(name: str, **attributes: Any) -> Callable[[F], F]:
    """Decorator: run the function in :func:`span` ``name`` with static ``attributes``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _state is None:
                return func(*args, **kwargs)
            with span(name, attributes):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def set_attributes(attributes: Mapping[str, str | bool | int | float | Sequence[str]]) -> None:
    """Add attributes to the current span (no-op when tracing is off or it is not sampled)."""
    if _state is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(dict(attributes))


@contextmanager
def suppressed() -> Iterator[None]:
    """Run a block without instrumentation spans (e.g. the relay's idle polls)."""
    if _state is None:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def now_ns() -> int:
    """A span start time taken before a block that may turn out not to be worth a span."""
    return time.time_ns()
