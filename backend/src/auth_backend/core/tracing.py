"""OpenTelemetry tracing: OTLP/HTTP export, Django/DB/Redis instrumentation, custom spans.

Tracing is **optional and off by default**. It is switched on, once per process, by
:func:`configure_tracing` — called by the gunicorn worker after the fork
(``backend/gunicorn.conf.py``), by ``wsgi.py`` for any other WSGI server, and by
``manage.py relay_outbox`` — when an OTLP exporter is configured: this module decides only
*whether* one is (:func:`exporter_configured`):

``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
    An http(s) URL switches tracing on. Neither set: tracing stays off (nothing is
    instrumented, nothing is exported).
``OTEL_SDK_DISABLED=true`` / ``OTEL_TRACES_EXPORTER=none``
    Off even with an endpoint.

Everything else is read by the OpenTelemetry SDK itself, as its documentation describes:
the endpoint, ``OTEL_EXPORTER_OTLP_*`` headers, timeout, compression and certificates (OTLP
over HTTP, protobuf), ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default
``parentbased_always_on``: a request carrying the gateway's ``traceparent`` is recorded
exactly when the gateway sampled it), ``OTEL_BSP_*`` for the batch span processor (a
bounded in-memory queue exported by a background thread: when the collector is down or
slow the queue drops spans, and requests never wait for the collector),
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_PROPAGATORS``. The one
default of ours: without ``OTEL_SERVICE_NAME`` (or a ``service.name`` resource attribute)
the service is named ``$SERVICE_NAME``, else ``auth-backend``. At exit, flushing waits at
most a few seconds.

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
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 5.0
# Attribute of a Django request holding its server span's context, for log lines written
# after the tracing middleware has already ended the span (Django's "django.request" logger).
REQUEST_SPAN_CONTEXT_ATTR = "otel_span_context"

_TRUE = frozenset({"1", "true", "yes", "on"})

F = TypeVar("F", bound=Callable[..., Any])


# --- configuration -----------------------------------------------------------------------


def _get(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def exporter_configured(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured OTLP endpoint (as set, for logging) when tracing should be on, else
    ``None``. The SDK reads the same variables when it builds the exporter."""
    environ = os.environ if environ is None else environ
    if _get(environ, "OTEL_SDK_DISABLED").lower() in _TRUE:
        return None
    exporter = _get(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter == "none":
        return None
    if exporter and exporter != "otlp":
        logger.warning("tracing: OTEL_TRACES_EXPORTER=%s is not supported; using otlp", exporter)
    endpoint = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _get(
        environ, "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        logger.warning("tracing: the OTLP endpoint is not an http(s) URL; tracing is off")
        return None
    return endpoint


# --- process state -----------------------------------------------------------------------


@dataclass
class _Tracing:
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


def configure_tracing(*, span_processor: Any = None) -> bool:
    """Switch tracing on for this process if the environment asks for it; ``True`` if on.

    Idempotent: a second call (e.g. ``wsgi.py`` after gunicorn's ``post_fork`` hook) does
    nothing. ``span_processor`` replaces the OTLP batch processor (tests). Never raises: a
    failure is logged and leaves tracing off.

    Under gunicorn, call it in the worker (``post_fork``), not in the master: the batch
    processor's export thread must belong to the process that produces the spans.
    """
    global _state, _atexit_registered
    with _lock:
        if _state is not None:
            return True
        endpoint = exporter_configured()
        if endpoint is None:
            return False
        try:
            # Deliberately broad: tracing is optional, and no fault in setting it up (an
            # exporter or instrumentation error of any kind) may keep the service from starting.
            _state = _start(span_processor)
        except Exception:
            logger.exception("tracing: could not be configured; continuing without it")
            return False
        if not _atexit_registered:
            atexit.register(shutdown_tracing)
            _atexit_registered = True
        service_name = _state.provider.resource.attributes.get("service.name")
    logger.info(
        "tracing: exporting spans to %s as %s",
        _redact(endpoint),
        service_name,
        extra={"otel_endpoint": _redact(endpoint)},
    )
    return True


def _redact(url: str) -> str:
    """``url`` without credentials, query or fragment (safe to log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _service_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("auth-backend")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return ""


def _resource() -> Any:
    """The SDK's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), with our
    version, and our service name where the environment names none."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    attributes = {}
    service_version = _service_version()
    if service_version:
        attributes["service.version"] = service_version
    resource = Resource.create(attributes)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        name = _get(os.environ, "SERVICE_NAME") or DEFAULT_SERVICE_NAME
        resource = resource.merge(Resource({SERVICE_NAME: name}))
    return resource


def _start(span_processor: Any) -> _Tracing:
    from opentelemetry.sdk.trace import TracerProvider

    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by the SDK.
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
    exporter = None
    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Endpoint, headers, timeout, compression, certificates and OTEL_BSP_*: the SDK's.
        exporter = OTLPSpanExporter()
        span_processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(span_processor)
    service_version = _service_version()
    state = _Tracing(
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

    # dbapi annotates its module argument as a callable; it takes any object whose attribute
    # it wraps (with wrapt), here the module.
    sqlite_module: Any = sqlite3.dbapi2
    dbapi.wrap_connect(
        "opentelemetry.instrumentation.dbapi",
        sqlite_module,
        "connect",
        "sqlite",
        {},
        tracer_provider=provider,
    )
    state.uninstrument.append(lambda: dbapi.unwrap_connect(sqlite_module, "connect"))

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

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps func's signature

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
