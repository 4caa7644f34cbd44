"""gunicorn's gthread worker with a deadline on reading each request (``worker_class`` in
backend/gunicorn.conf.py; backend/docs/listeners.md "Slow clients").

gthread keeps idle connections in its poller, but once a connection is readable one of the
worker's few threads takes it and reads the request on a blocking socket with no time limit
(gunicorn/workers/gthread.py ``handle``: ``next(conn.parser)``). A client that sends its
request head a byte at a time keeps that thread for as long as it likes: a handful of them
held every thread, and the health probes, on the same listener, timed out.

Here every read of a request's head and body must end before a deadline set when a thread
takes the request (``GUNICORN_REQUEST_READ_TIMEOUT`` seconds, default 2): a read past it
ends the connection as a client that stopped sending (gunicorn's ``NoMoreData``, logged at
debug level), and the thread goes back to the pool. The same bound replaces gthread's own
wait for a new connection's first byte (``DEFAULT_WORKER_DATA_TIMEOUT``, 5 s, during which
a silent client holds a thread too). The gateway sends whole requests at once (Kong buffers
bodies, ``proxy_request_buffering``) over the local network, so only a slow client meets
it. A burst of slow clients still queues the probes behind them, for about (slow clients x
the timeout / threads) seconds at worst (backend/docs/listeners.md has the figures).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers import gthread

DEFAULT_READ_TIMEOUT = 2.0


def read_timeout(env: Any = os.environ) -> float:
    """``GUNICORN_REQUEST_READ_TIMEOUT`` in seconds (a positive number), default 2."""
    raw = (env.get("GUNICORN_REQUEST_READ_TIMEOUT") or "").strip()
    value = float(raw) if raw else DEFAULT_READ_TIMEOUT
    if not value > 0:
        raise ValueError(f"GUNICORN_REQUEST_READ_TIMEOUT must be > 0 (got {raw!r})")
    return value


class RequestReadTimeout(NoMoreData):
    """The client did not send its request before the deadline."""


class DeadlineSocket:
    """The socket gunicorn's parser reads from, each ``recv`` bounded by a deadline.

    Everything but ``recv`` goes to the socket itself (``gettimeout``/``settimeout`` too,
    which gunicorn's bounded body drain uses)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None

    def recv(self, size: int) -> bytes:
        if self.deadline is None:
            return self._sock.recv(size)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestReadTimeout(b"")
        prior = self._sock.gettimeout()
        self._sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            return self._sock.recv(size)
        except TimeoutError as exc:
            raise RequestReadTimeout(b"") from exc
        finally:
            self._sock.settimeout(prior)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def arm(conn: Any, timeout: float) -> None:
    """Give ``conn``'s next request ``timeout`` seconds to arrive, head and body."""
    unreader = getattr(getattr(conn, "parser", None), "unreader", None)
    sock = getattr(unreader, "sock", None)
    if unreader is None or sock is None:
        return  # HTTP/2 or a source that is not a socket: left as gunicorn reads it
    if not isinstance(sock, DeadlineSocket):
        sock = unreader.sock = DeadlineSocket(sock)
    sock.deadline = time.monotonic() + timeout


class DeadlineThreadWorker(gthread.ThreadWorker):
    """``gthread`` with a read deadline per request (see the module docstring)."""

    read_timeout = DEFAULT_READ_TIMEOUT

    def init_process(self) -> None:
        self.read_timeout = read_timeout()
        # gthread's wait for a new connection's first byte, read from its module at each
        # call (gunicorn/workers/gthread.py handle): this worker process's own copy.
        gthread.DEFAULT_WORKER_DATA_TIMEOUT = self.read_timeout
        super().init_process()

    def handle(self, conn: Any) -> Any:
        if conn.initialized:  # a kept-alive connection: its next request
            arm(conn, self.read_timeout)
        else:  # the parser exists once the connection is initialised (after TLS)
            init = conn.init

            def init_with_deadline() -> None:
                init()
                arm(conn, self.read_timeout)

            conn.init = init_with_deadline
        return super().handle(conn)
