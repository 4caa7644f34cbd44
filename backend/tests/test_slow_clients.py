"""Slow clients on the public listener do not stop the health probes.

The compose and Kubernetes probes (backend/healthcheck.py) ask ``/api/auth/health/ready/``
and ``/live/`` on the public listener. 50 clients hold it: half send a request head one
byte at a time and never finish it, half connect and send nothing. The probes must still
be answered (a generous timeout, no time bound: the figures are in
backend/docs/listeners.md). A real gunicorn with backend/gunicorn.conf.py
(tests/support/backend.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.backend import Backend, running_backend

pytestmark = pytest.mark.gunicorn  # the real backend as a process: not in make test-fast
SLOW_CLIENTS = 50
PROBES = ("/api/auth/health/live/", "/api/auth/health/ready/")
HEAD = b"GET /api/auth/health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with running_backend(tmp_path_factory.mktemp("slow-clients")) as server:
        yield server


class SlowClients:
    """``count`` connections to ``port``: even ones trickle a request head, a byte every
    ``interval`` seconds, odd ones stay silent."""

    def __init__(self, port: int, count: int, interval: float = 0.2) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def _trickle(self) -> None:
        position = 0
        while not self.stop.wait(self.interval):
            for sock in self.socks[::2]:
                try:
                    sock.send(HEAD[position : position + 1])
                except OSError:
                    pass
            position = (position + 1) % len(HEAD)

    def __enter__(self) -> SlowClients:
        self.thread.start()
        time.sleep(2 * self.interval)  # every trickling head has begun
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def test_probes_are_answered_while_50_slow_clients_hold_the_listener(backend: Backend) -> None:
    with SlowClients(backend.port, SLOW_CLIENTS):
        for _ in range(3):
            for path in PROBES:
                # a new connection each time, as the probe makes one
                response = httpx.get(backend.url + path, timeout=60)
                assert response.status_code == 200, response.text
        # the slow clients are still connected and served nothing
        assert threading.active_count() >= 1
