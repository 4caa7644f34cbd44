"""The fault proxy's "refuse" is a dependency that is down: nothing it switched off answers.

``FaultProxy.set_mode("refuse")`` switches the mode, then resets the links it knows. Two
moments could still carry traffic: a link whose pumps run before its reset, and a connection
the accept thread was linking while the mode switched (it was not among the links to reset,
and passed traffic for as long as "refuse" lasted). A "down" Redis that answers closes a
circuit breaker in the middle of an outage and lets every client through to fail again (the
rate limiter's outage test, kong-plugins/tests/ratelimit/test_redis_store.py, counts those).
Each test plays one of those moments in a fixed order, with a listener of its own upstream.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from tests.support import fault_proxy
from tests.support.fault_proxy import FaultProxy

# A hang guard for socket reads, never an assertion: each read below ends at once when the
# proxy behaves, with data, an end of stream or a reset.
HANG_GUARD_SECONDS = 10


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(HANG_GUARD_SECONDS)
    yield listener
    listener.close()


def _send(sock: socket.socket, data: bytes) -> None:
    """Send, unless the proxy has already reset the connection (which is what it should do)."""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        sock.sendall(data)


def _read_or_closed(sock: socket.socket) -> bytes:
    """What arrives first: data, or b"" for an end of stream or a reset."""
    sock.settimeout(HANG_GUARD_SECONDS)
    try:
        return sock.recv(1024)
    except ConnectionResetError:
        return b""


def test_a_link_not_yet_reset_carries_nothing_once_refuse_is_set(
    upstream: socket.socket,
) -> None:
    with FaultProxy(upstream.getsockname()[1]) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port))
        server, _ = upstream.accept()
        client.sendall(b"PING\r\n")
        assert _read_or_closed(server) == b"PING\r\n"  # linked and passing
        # The mode as set_mode("refuse") leaves it before its reset reaches this link.
        proxy.mode = "refuse"
        _send(client, b"PING\r\n")
        assert _read_or_closed(server) == b"", "a request went through a refused link"
        assert _read_or_closed(client) == b""
        assert not proxy._links
        client.close()
        server.close()


def test_a_connection_linked_while_refuse_is_set_is_reset(
    upstream: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultProxy(upstream.getsockname()[1]) as proxy:
        connect = socket.create_connection

        def refuse_while_connecting(address, *args, **kwargs):  # type: ignore[no-untyped-def]
            if address == proxy.target:  # the accept thread's upstream connection
                proxy.set_mode("refuse")
            return connect(address, *args, **kwargs)

        monkeypatch.setattr(fault_proxy.socket, "create_connection", refuse_while_connecting)
        client = connect(("127.0.0.1", proxy.port))
        server, _ = upstream.accept()
        monkeypatch.undo()
        # Reset at once, before any traffic: no link is left for a later "pass" to revive.
        assert _read_or_closed(client) == b""
        assert _read_or_closed(server) == b""
        assert not proxy._links
        client.close()
        server.close()
