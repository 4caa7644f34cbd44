"""The request-read deadline of the backend's gunicorn worker
(auth_backend.core.gunicorn_worker): reads past it end the request, the socket's own
timeout is kept. End to end: backend/tests/test_slow_clients.py."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from auth_backend.core.gunicorn_worker import (
    DeadlineSocket,
    RequestReadTimeout,
    arm,
    read_timeout,
)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_read_within_the_deadline_returns_the_bytes(pair) -> None:
    server, client = pair
    sock = DeadlineSocket(server)
    sock.deadline = time.monotonic() + 5
    client.sendall(b"GET")
    assert sock.recv(10) == b"GET"
    assert server.gettimeout() is None  # restored


def test_a_read_that_waits_past_the_deadline_ends_the_request(pair) -> None:
    server, _ = pair
    server.settimeout(30)
    sock = DeadlineSocket(server)
    sock.deadline = time.monotonic() + 0.05
    with pytest.raises(RequestReadTimeout):
        sock.recv(10)
    assert server.gettimeout() == 30  # the socket's own timeout is kept


def test_a_read_after_the_deadline_is_refused_without_reading(pair) -> None:
    server, client = pair
    client.sendall(b"x")
    sock = DeadlineSocket(server)
    sock.deadline = time.monotonic() - 1
    with pytest.raises(RequestReadTimeout):
        sock.recv(10)
    assert server.recv(10) == b"x"  # left unread


def test_no_deadline_reads_as_the_socket_does(pair) -> None:
    server, client = pair
    client.sendall(b"abc")
    assert DeadlineSocket(server).recv(10) == b"abc"


def test_arm_wraps_the_parsers_socket_once_and_renews_the_deadline(pair) -> None:
    server, _ = pair
    conn = SimpleNamespace(parser=SimpleNamespace(unreader=SimpleNamespace(sock=server)))
    arm(conn, 5)
    wrapped = conn.parser.unreader.sock
    assert isinstance(wrapped, DeadlineSocket)
    first = wrapped.deadline
    time.sleep(0.01)
    arm(conn, 5)
    assert conn.parser.unreader.sock is wrapped and wrapped.deadline > first
    assert wrapped.fileno() == server.fileno()  # the rest goes to the socket


def test_arm_leaves_a_parser_without_a_socket_alone() -> None:
    conn = SimpleNamespace(parser=None)
    arm(conn, 5)
    assert conn.parser is None


@pytest.mark.parametrize(
    ("env", "value"), [({}, 2.0), ({"GUNICORN_REQUEST_READ_TIMEOUT": "2.5"}, 2.5)]
)
def test_read_timeout_setting(env: dict[str, str], value: float) -> None:
    assert read_timeout(env) == value


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_read_timeout_must_be_positive(raw: str) -> None:
    with pytest.raises(ValueError, match="GUNICORN_REQUEST_READ_TIMEOUT"):
        read_timeout({"GUNICORN_REQUEST_READ_TIMEOUT": raw})
