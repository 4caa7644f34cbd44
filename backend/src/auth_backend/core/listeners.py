"""The backend's three listeners, and routing each request by the one it arrived on.

gunicorn (``backend/gunicorn.conf.py``) binds three addresses: the public API
(``GUNICORN_BIND``, 8080), the internal API and the Django admin (``GUNICORN_INTERNAL_BIND``,
8081) and the Prometheus metrics (``GUNICORN_METRICS_BIND``, 9100). Network policy works on
addresses and ports, not paths, so each listener serves its own URLconf and nothing else: a
request on the wrong listener is a 404 in the service's error shape.

Which listener a request came through is read from the accepted connection itself:
gunicorn puts the client socket in the WSGI environ as ``gunicorn.socket``, and its
``getsockname()`` is the local address the connection was accepted on, i.e. the listener's
port. ``SERVER_PORT`` is not used: it is the listener's port for a TCP bind in gunicorn
today, but the WSGI spec lets a server derive it from the ``Host`` header (gunicorn does for
UNIX sockets), and the ``Host`` header is the client's to choose. ``post_fork`` in the
gunicorn config hands each worker the port → listener map (:func:`configure`); a connection
on a port the map does not name is served by no URLconf (404 everywhere).

Without a gunicorn socket (Django's test client, ``manage.py runserver``, another WSGI
server) the request is on the **public** listener, unless the WSGI environ carries
``auth_backend.listener`` — a key only the server or the test client can set (HTTP headers
arrive as ``HTTP_*``): ``Client(**{ENVIRON_KEY: "internal"})``. Under gunicorn that key is
ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

PUBLIC, INTERNAL, METRICS = "public", "internal", "metrics"
# Connections on a port no listener is configured for (e.g. an extra ``--bind``).
UNKNOWN = "unknown"
# The public listener's is ROOT_URLCONF, read per request (tests may override it).
URLCONFS: dict[str, str | None] = {
    PUBLIC: None,
    INTERNAL: "auth_backend.urls_internal",
    METRICS: "auth_backend.urls_metrics",
    UNKNOWN: "auth_backend.urls_none",
}
ENVIRON_KEY = "auth_backend.listener"

_ports: dict[int, str] = {}


def configure(ports: Mapping[int, str]) -> None:
    """Set this process's port → listener map (gunicorn's ``post_fork``)."""
    unknown = set(ports.values()) - {PUBLIC, INTERNAL, METRICS}
    if unknown:
        raise ValueError(f"unknown listener names: {sorted(unknown)}")
    _ports.clear()
    _ports.update(ports)


def listener_of(environ: Mapping[str, Any]) -> str:
    """The listener a request arrived on (see the module docstring)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        chosen = environ.get(ENVIRON_KEY, PUBLIC)
        return chosen if chosen in (PUBLIC, INTERNAL, METRICS) else UNKNOWN
    try:
        local = sock.getsockname()
    except OSError:  # the client is gone already
        return UNKNOWN
    port = local[1] if isinstance(local, tuple) else None
    return _ports.get(port, UNKNOWN) if isinstance(port, int) else UNKNOWN


class ListenerMiddleware:
    """Routes the request with its listener's URLconf (``request.urlconf``).

    Sets ``request.listener`` for what comes after (the HTTP metrics label it).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        listener = listener_of(request.META)
        request.listener = listener  # type: ignore[attr-defined]  # our attribute on Django's request
        urlconf = URLCONFS[listener] or settings.ROOT_URLCONF
        request.urlconf = urlconf
        return self.get_response(request)
