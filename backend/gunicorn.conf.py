"""gunicorn settings for the auth backend.

    gunicorn -c backend/gunicorn.conf.py auth_backend.wsgi

Environment overrides (gunicorn's own ``GUNICORN_CMD_ARGS`` works too):

``GUNICORN_BIND``       the public API's listen address, default ``0.0.0.0:$PORT`` (``PORT``
                        default 8080): ``/api/auth/...``, what the gateway routes
``GUNICORN_INTERNAL_BIND`` the internal API's, default ``0.0.0.0:8081``: ``/internal/auth/...``
                        and the Django admin (``/admin/``)
``GUNICORN_METRICS_BIND`` the Prometheus metrics', default ``0.0.0.0:9100``: ``/metrics``
                        (also ``/api/auth/metrics``)
``GUNICORN_WORKERS``    worker processes, default ``$WEB_CONCURRENCY`` or 2
``GUNICORN_THREADS``    threads per worker (gthread), default 8
``GUNICORN_REQUEST_READ_TIMEOUT`` seconds a request's head and body have to arrive once a
                        thread takes it, default 2 (slow clients; backend/docs/listeners.md)
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
``GUNICORN_INTERNAL_CA_CERTS`` / ``GUNICORN_METRICS_CA_CERTS``  the client CA(s) of the
                        internal and the metrics listener instead (default:
                        ``GUNICORN_CA_CERTS``). One client CA per listener keeps the gateway,
                        whose certificate opens the public listener, out of the other two,
                        whatever network it shares with them (backend/docs/tls.md)

A TLS setting without ``GUNICORN_CERTFILE``, or ``required``/``optional`` without
``GUNICORN_CA_CERTS``, stops gunicorn at start instead of serving plain HTTP.

One listener each, on three different ports, because network policy works on addresses and
ports, not paths: a request is routed by the listener it arrived on (``post_fork`` gives
each worker the port → listener map; ``auth_backend.core.listeners``) and is a 404 on any
other. ``--bind`` on the command line is refused: its listeners would have no name.

Metrics: prometheus_client's multiprocess mode ("Multiprocess Mode (E.g. Gunicorn)" in its
docs). ``PROMETHEUS_MULTIPROC_DIR`` is set here, in the master before any worker forks: a
fresh temporary directory (removed at exit), or the directory you set, emptied of its
``*.db`` files at start. A worker that exits is marked dead (``child_exit``), so its
live-gauge samples disappear while its counters still count.

Tracing: each worker switches OpenTelemetry on after the fork (``post_fork``), so the span
export thread runs in the process that records the spans, when ``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (see ``auth_backend.core.tracing``); a
worker that exits flushes its spans for at most a few seconds (``worker_exit``). Do not turn
on ``preload_app`` without moving that set-up.
"""

import glob
import os
import shutil
import tempfile

from gunicorn.util import parse_address

_port = os.environ.get("PORT", "8080")


def _listeners(env):
    """``{name: bind}`` of the public, internal and metrics listeners, checked."""
    binds = {
        "public": (env.get("GUNICORN_BIND") or "").strip() or f"0.0.0.0:{_port}",
        "internal": (env.get("GUNICORN_INTERNAL_BIND") or "").strip() or "0.0.0.0:8081",
        "metrics": (env.get("GUNICORN_METRICS_BIND") or "").strip() or "0.0.0.0:9100",
    }
    ports = {}
    for name, address in binds.items():
        parsed = parse_address(address)
        if not isinstance(parsed, tuple) or not parsed[1]:
            raise RuntimeError(
                f"the {name} listener needs host:port with a port other than 0 "
                f"(got {address!r}): requests are routed by port"
            )
        ports[name] = int(parsed[1])
    if len(set(ports.values())) != len(ports):
        raise RuntimeError(
            f"the public, internal and metrics listeners need three different ports (got {binds})"
        )
    return binds, {port: name for name, port in ports.items()}


_binds, _listener_ports = _listeners(os.environ)

wsgi_app = "auth_backend.wsgi:application"
bind = list(_binds.values())
workers = int(os.environ.get("GUNICORN_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
# gthread with a deadline on reading each request: a slow client holds a thread for at most
# GUNICORN_REQUEST_READ_TIMEOUT seconds, so the health probes (backend/healthcheck.py, on
# this same public listener) stay answered (auth_backend.core.gunicorn_worker;
# backend/docs/listeners.md "Slow clients").
worker_class = "auth_backend.core.gunicorn_worker.DeadlineThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = timeout
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Heartbeat files on tmpfs: a disk-backed /tmp in a container can stall workers.
if os.path.isdir("/dev/shm"):  # noqa: S108 - gunicorn's documented container setting
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# The route the gateway matched decides the view (backend/docs/listeners.md): no request
# header may set the script name or the path. gunicorn maps a header named in
# ``forwarder_headers`` (default SCRIPT_NAME,PATH_INFO) into the WSGI environment whenever
# the peer is in ``forwarded_allow_ips`` (default loopback, where the gateway sits in
# ``make run``): a ``SCRIPT_NAME`` header is cut off the path and Django resolves the rest
# (gunicorn/http/wsgi.py ``create``). Empty, no header is a forwarder's, and ``header_map
# = "drop"`` drops every name with an underscore (gunicorn/http/message.py
# ``_apply_header_policy``), so ``SCRIPT_NAME``, ``Script_Name`` and ``X_User_Id`` never reach
# the environment, whoever the peer is. (The edge clears such headers too, for every
# upstream: docs/architecture.md.)
forwarder_headers = ""
header_map = "drop"

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
            raise RuntimeError(
                "GUNICORN_KEYFILE, GUNICORN_CA_CERTS and GUNICORN_CERT_REQS "
                "need GUNICORN_CERTFILE (TLS is on only with a certificate)"
            )
        return {}
    modes = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    mode = (reqs or ("required" if ca_certs else "none")).lower()
    if mode not in modes:
        raise RuntimeError(
            f"GUNICORN_CERT_REQS must be one of none, optional, required (got {reqs!r})"
        )
    if mode != "none" and ca_certs is None:
        raise RuntimeError(
            f"GUNICORN_CERT_REQS={mode} needs GUNICORN_CA_CERTS (the CA that "
            "signs client certificates)"
        )
    listener_cas = {
        name: value(f"GUNICORN_{name.upper()}_CA_CERTS") for name in ("internal", "metrics")
    }
    if any(listener_cas.values()) and ca_certs is None:
        raise RuntimeError(
            "GUNICORN_INTERNAL_CA_CERTS and GUNICORN_METRICS_CA_CERTS need GUNICORN_CA_CERTS "
            "(the public listener's client CA)"
        )
    for path in (certfile, keyfile, ca_certs, *listener_cas.values()):
        if path is not None and not os.path.isfile(path):
            raise RuntimeError(f"TLS file not found: {path}")
    return {
        "certfile": certfile,
        "keyfile": keyfile,
        "ca_certs": ca_certs,
        "cert_reqs": modes[mode],
        "listener_ca_certs": {name: path for name, path in listener_cas.items() if path},
    }


class _WithCaCerts:
    """gunicorn's settings with another ``ca_certs``: what its SSL context factory reads."""

    def __init__(self, conf, ca_certs):
        self._conf = conf
        self.ca_certs = ca_certs

    def __getattr__(self, name):
        return getattr(self._conf, name)


def _client_ca_per_listener(ca_by_port):
    """Wrap each accepted connection with the client CA of the listener it came on.

    gunicorn has one TLS configuration for all its listeners: its workers call
    ``gunicorn.sock.ssl_wrap_socket(sock, cfg)`` for every accepted connection
    (gunicorn/workers/gthread.py ``TConn.init``), which builds the context from
    ``cfg.ca_certs``. The accepted socket's local port names its listener, so the
    connection gets that listener's CA; everything else is gunicorn's own context."""
    from gunicorn import sock

    original = getattr(sock.ssl_wrap_socket, "per_listener_original", sock.ssl_wrap_socket)

    def ssl_wrap_socket(client, conf):
        ca_certs = ca_by_port.get(client.getsockname()[1])
        return original(client, conf if ca_certs is None else _WithCaCerts(conf, ca_certs))

    ssl_wrap_socket.per_listener_original = original
    sock.ssl_wrap_socket = ssl_wrap_socket


_tls = _tls_settings(os.environ)
if _tls:
    certfile = _tls["certfile"]
    keyfile = _tls["keyfile"]
    ca_certs = _tls["ca_certs"]
    cert_reqs = _tls["cert_reqs"]
    if _tls["listener_ca_certs"]:
        _client_ca_per_listener(
            {
                port: _tls["listener_ca_certs"][name]
                for port, name in _listener_ports.items()
                if name in _tls["listener_ca_certs"]
            }
        )

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


# Before any worker forks (and before prometheus_client is imported anywhere): every worker
# writes its samples under this directory. Re-reading this file (HUP) keeps the directory.
_OWN_DIR = "AUTH_BACKEND_OWN_MULTIPROC_DIR"  # marks the directory this file created
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_OWN_DIR] = tempfile.mkdtemp(
        prefix="auth-backend-prometheus-"
    )


def _without_server_header():
    """gunicorn writes ``Server: gunicorn`` on every response and has no setting for it
    (gunicorn/http/wsgi.py ``Response.default_headers``): drop that line, so the server and
    its version are not advertised to clients (Kong then names itself, as it does for an
    upstream without a ``Server`` header: kong/runloop/handler.lua header_filter)."""
    from gunicorn.http import wsgi

    original = wsgi.Response.default_headers
    if getattr(original, "without_server", False):  # this file is read again on HUP
        return

    def default_headers(self):
        return [line for line in original(self) if not line.lower().startswith("server:")]

    default_headers.without_server = True
    wsgi.Response.default_headers = default_headers


_without_server_header()


def on_starting(server):
    """Once, in the master: refuse foreign binds; start the metrics directory empty."""
    if list(server.cfg.bind) != bind:
        raise RuntimeError(
            f"bind is {server.cfg.bind}, expected {bind}: set GUNICORN_BIND, "
            "GUNICORN_INTERNAL_BIND and GUNICORN_METRICS_BIND, not --bind"
        )
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):  # the docs: wipe before startup
        os.remove(stale)


def on_exit(server):
    """In the master: remove the metrics directory if this file created it."""
    own = os.environ.get(_OWN_DIR)
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)


def child_exit(server, worker):
    """In the master: the worker's live gauges go (prometheus_client multiprocess mode)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """The listener map and tracing in the worker, before it loads the application."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_backend.settings")
    from auth_backend.core.listeners import configure
    from auth_backend.core.tracing import configure_tracing

    configure(_listener_ports)
    configure_tracing()


def worker_exit(server, worker):
    """Flush this worker's queued spans (bounded: a down collector cannot hold the exit)."""
    from auth_backend.core.tracing import shutdown_tracing

    shutdown_tracing()
