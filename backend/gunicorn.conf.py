"""gunicorn settings for the auth backend.

    gunicorn -c backend/gunicorn.conf.py auth_backend.wsgi

Environment overrides (gunicorn's own ``GUNICORN_CMD_ARGS`` works too):

``GUNICORN_BIND``       listen address, default ``0.0.0.0:$PORT`` (``PORT`` default 8080)
``GUNICORN_WORKERS``    worker processes, default ``$WEB_CONCURRENCY`` or 2
``GUNICORN_THREADS``    threads per worker (gthread), default 4
``GUNICORN_TIMEOUT``    seconds before a silent worker is killed and restarted, default 30
``GUNICORN_KEEPALIVE``  idle keep-alive seconds, default 75: longer than Kong's upstream
                        keepalive idle timeout (60 s), so the gateway, not gunicorn, closes
                        idle connections and never reuses one gunicorn has just dropped
``GUNICORN_ACCESS_LOG`` ``1`` (default) to log each request as JSON on stdout, ``0`` to disable
``LOG_LEVEL``           default ``INFO``; ``SERVICE_NAME`` as in the Django settings

Tracing: each worker switches OpenTelemetry on after the fork (``post_fork``), so the span
export thread runs in the process that records the spans, when ``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (see ``auth_backend.core.tracing``); a
worker that exits flushes its spans for at most a few seconds (``worker_exit``). Do not turn
on ``preload_app`` without moving that set-up.
"""

import os

_port = os.environ.get("PORT", "8080")

wsgi_app = "auth_backend.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{_port}")
workers = int(os.environ.get("GUNICORN_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = timeout
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Heartbeat files on tmpfs: a disk-backed /tmp in a container can stall workers.
if os.path.isdir("/dev/shm"):  # noqa: S108 - gunicorn's documented container setting
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# gunicorn >= 25 otherwise opens a management socket under $XDG_RUNTIME_DIR or $HOME, which
# a container may not have writable; scaling is the orchestrator's job here.
control_socket_disable = True

_log_level = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
loglevel = _log_level.lower()
accesslog = (
    "-"
    if os.environ.get("GUNICORN_ACCESS_LOG", "1").strip().lower() in {"1", "true", "yes", "on"}
    else None
)
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "auth_backend.core.logs.GunicornJsonFormatter",
            "service": os.environ.get("SERVICE_NAME", "").strip() or "auth-backend",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        },
    },
    "root": {"level": _log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _log_level, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


def post_fork(server, worker):
    """Tracing in the worker, before it loads the application (``auth_backend.wsgi``)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_backend.settings")
    from auth_backend.core.tracing import configure_tracing

    configure_tracing()


def worker_exit(server, worker):
    """Flush this worker's queued spans (bounded: a down collector cannot hold the exit)."""
    from auth_backend.core.tracing import shutdown_tracing

    shutdown_tracing()
