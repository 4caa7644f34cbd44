"""The rate limiter's Redis connections: redis-py's, checked out without redis-py's pool.

A decision borrows one connection for one ``EVALSHA``. redis-py's ``BlockingConnectionPool``
pays, on every checkout and return, a pid check, a ``LifoQueue`` with its conditions and
observability counters, besides the check every pool needs. Measured in process, one
decision every 5 ms as a plugin server idling between requests sees them (docs/
plugin-runtime.md): checkout and return cost ~90 µs of a ~330 µs decision, and this stack,
which keeps the check, saves ~30 µs of them (~15 µs back to back). It keeps what a pool must
do and nothing else:

* at most ``size`` connections in use; a caller waits at most ``wait`` seconds for one, then
  gets redis-py's ``ConnectionError("No connection available.")``, as from a
  ``BlockingConnectionPool`` with the same ``max_connections`` and ``timeout``;
* the most recently returned connection first (LIFO), so a quiet node keeps few sockets warm;
* a connection that has data to read or was closed by the server while it sat idle (a Redis
  restart, a proxy's reset) is reconnected before use, with redis-py's own ``can_read``
  check, so nobody's decision fails because the pool held a dead socket.

Connecting, ``AUTH``, ``SELECT``, TLS and the RESP parser stay redis-py's: every connection is
``pool.connection_class(**pool.connection_kwargs)`` of the pool built from the settings.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis


class ConnectionStack:
    """Connections of ``pool``'s class and settings, at most ``size`` of them.

    Taking an idle connection and giving it back take no lock (``list.pop``/``append`` are
    atomic); only a caller that finds none idle takes the lock, to make one or to wait.
    """

    def __init__(self, pool: redis.ConnectionPool, size: int, wait: float) -> None:
        self._pool = pool
        self._size = size
        self._wait = wait
        self._idle: list[Any] = []  # redis-py leaves Connection untyped
        self._all: list[Any] = []
        self._freed = threading.Condition(threading.Lock())  # never held across I/O
        self._waiting = 0

    def acquire(self) -> Any:
        """A connected connection; give it back with ``release`` whatever happens."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._new_or_freed()
        try:
            conn.connect()  # at once when connected
            try:
                stale = conn.can_read()  # data, or the server closed it while idle
            except (redis.ConnectionError, OSError):
                stale = True
            if stale:
                conn.disconnect()
                conn.connect()
        except BaseException:
            self.release(conn)
            raise
        return conn

    def release(self, conn: Any) -> None:
        self._idle.append(conn)
        # Read after the append: a caller that counted itself in before it looked at the
        # idle list either saw this connection there or is waiting to be told.
        if self._waiting:
            with self._freed:
                self._freed.notify()

    def close(self) -> None:
        """Disconnect every connection (shutdown, tests); they reconnect if used again."""
        with self._freed:
            connections = list(self._all)
        for conn in connections:
            conn.disconnect()

    def _new_or_freed(self) -> Any:
        deadline = time.monotonic() + self._wait
        with self._freed:
            self._waiting += 1
            try:
                while True:
                    try:
                        return self._idle.pop()
                    except IndexError:
                        pass
                    if len(self._all) < self._size:
                        conn = self._pool.connection_class(**self._pool.connection_kwargs)
                        self._all.append(conn)  # made, not connected: no I/O under the lock
                        return conn
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise redis.ConnectionError("No connection available.")
                    self._freed.wait(remaining)
            finally:
                self._waiting -= 1
