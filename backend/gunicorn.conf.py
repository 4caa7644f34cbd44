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

TLS on the listener (backend/docs/tls.md; all unset: plain HTTP, as ``make run`` uses):

``GUNICORN_CERTFILE``   the server certificate (PEM, chain after the leaf): turns TLS on
``GUNICORN_KEYFILE``    its private key (PEM; unset: the key is in ``GUNICORN_CERTFILE``)
``GUNICORN_CA_CERTS``   CA certificates (PEM) that client certificates must chain to
``GUNICORN_CERT_REQS``  ``required`` (default when ``GUNICORN_CA_CERTS`` is set: a client
                        without a certificate the CA signed fails the handshake),
                        ``optional``, or ``none`` (default without a CA)

A TLS setting without ``GUNICORN_CERTFILE``, or ``required``/``optional`` without
``GUNICORN_CA_CERTS``, stops gunicorn at start instead of serving plain HTTP.

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


def _tls_settings(env):
    """gunicorn's ``certfile``/``keyfile``/``ca_certs``/``cert_reqs`` from ``GUNICORN_*``."""
    import ssl

    def value(name):
        return (env.get(name) or "").strip() or None

    certfile, keyfile = value("GUNICORN_CERTFILE"), value("GUNICORN_KEYFILE")
    ca_certs, reqs = value("GUNICORN_CA_CERTS"), value("GUNICORN_CERT_REQS")
    if certfile is None:
        if keyfile or ca_certs or reqs:
            raise RuntimeError("GUNICORN_KEYFILE, GUNICORN_CA_CERTS and GUNICORN_CERT_REQS "
                               "need GUNICORN_CERTFILE (TLS is on only with a certificate)")
        return {}
    modes = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
             "required": ssl.CERT_REQUIRED}
    mode = (reqs or ("required" if ca_certs else "none")).lower()
    if mode not in modes:
        raise RuntimeError(f"GUNICORN_CERT_REQS must be one of none, optional, required "
                           f"(got {reqs!r})")
    if mode != "none" and ca_certs is None:
        raise RuntimeError(f"GUNICORN_CERT_REQS={mode} needs GUNICORN_CA_CERTS (the CA that "
                           "signs client certificates)")
    for path in (certfile, keyfile, ca_certs):
        if path is not None and not os.path.isfile(path):
            raise RuntimeError(f"TLS file not found: {path}")
    return {"certfile": certfile, "keyfile": keyfile, "ca_certs": ca_certs,
            "cert_reqs": modes[mode]}


_tls = _tls_settings(os.environ)
if _tls:
    certfile = _tls["certfile"]
    keyfile = _tls["keyfile"]
    ca_certs = _tls["ca_certs"]
    cert_reqs = _tls["cert_reqs"]

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
