"""edge_plugins.pdk_bridge's side of the socket, in process: Kong's connection is the test's
gevent socket, read by the bridge in the hub's own callback (``_Connection``), so the
cases a subprocess cannot stage on cue are staged here: an answer bigger than the kernel's
socket buffer, Kong's connection gone in the middle of an event, accept() failing."""

from __future__ import annotations

import errno
import logging
import socket as stdlib_socket
from typing import Any

import gevent
import pytest
from gevent import socket as gevent_socket
from kong_pdk.exception import PDKException

from edge_plugins import pdk_bridge
from tests.support.kong_client import Connection, start_instance

BIG = 4 * 1024 * 1024  # bytes: many times a Unix socket's buffer


class _Plugin:
    seen: list[Any] = []

    def __init__(self, config: Any) -> None:
        self.mode = config.get("mode", "big")

    def access(self, kong: Any) -> None:
        try:
            if self.mode == "big":
                kong.service.request.set_headers({"x-big": "b" * BIG})
            else:
                kong.request.get_header("x")
            _Plugin.seen.append("answered")
        except PDKException as exc:
            _Plugin.seen.append(str(exc))


@pytest.fixture
def bridge() -> pdk_bridge.PluginBridge:
    _Plugin.seen = []
    return pdk_bridge.PluginBridge("wire", _Plugin, hub=gevent.get_hub())


def _connected(bridge: pdk_bridge.PluginBridge) -> Connection:
    """Kong's end of a connection the bridge reads in the hub: a gevent socket, so the
    test's greenlet waits cooperatively while the hub serves."""
    ours, kongs = stdlib_socket.socketpair(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    pdk_bridge._Connection(bridge, ours, bridge.hub.loop)
    return Connection(gevent_socket.socket(fileno=kongs.detach()))


def _instance(kong: Connection, mode: str) -> int:
    return start_instance(kong, "wire", {"mode": mode})


def test_an_answer_bigger_than_the_socket_buffer_arrives_whole_and_in_order(
    bridge: pdk_bridge.PluginBridge,
) -> None:
    kong = _connected(bridge)
    iid = _instance(kong, "big")
    with gevent.Timeout(30):
        msgid = kong.send("plugin.HandleEvent", {"InstanceId": iid, "EventName": "access"})
        gevent.sleep(0.1)  # Kong slow to read: the kernel takes part of the answer only
        error, result = kong.receive(msgid)
        assert error is None
        assert result["Data"]["Method"] == "kong.service.request.set_headers"
        assert len(result["Data"]["Args"][0]["x-big"]) == BIG
        done = kong.call("plugin.Step", {"EventId": result["EventId"], "Data": None})
    assert done == (None, {"Data": "ret", "EventId": result["EventId"]})
    assert _Plugin.seen == ["answered"] and not bridge.events


def test_kongs_connection_gone_mid_event_ends_the_handler_instead_of_parking_it(
    bridge: pdk_bridge.PluginBridge, caplog: pytest.LogCaptureFixture
) -> None:
    setup = _connected(bridge)
    iid = _instance(setup, "call")
    kong = _connected(bridge)
    kong.send("plugin.HandleEvent", {"InstanceId": iid, "EventName": "access"})
    kong.sock.close()  # before the bridge reads the request: its answer has nowhere to go
    with gevent.Timeout(5):
        while not _Plugin.seen:
            gevent.sleep(0.01)
    assert _Plugin.seen == ["kong.request.get_header: the connection to Kong is gone"]
    assert not bridge.events and len(bridge.idle) == 1  # the worker is back in the pool
    assert "answer lost" in caplog.text
    # The server goes on: the next event on a live connection is served.
    _Plugin.seen = []
    with gevent.Timeout(5):
        _, first = setup.call("plugin.HandleEvent", {"InstanceId": iid, "EventName": "access"})
        _, done = setup.call("plugin.Step", {"EventId": first["EventId"], "Data": "v"})
    assert done["Data"] == "ret" and _Plugin.seen == ["answered"]


class _FailingListener(stdlib_socket.socket):
    """A listening socket whose accept() fails with EMFILE (out of file descriptors) while
    ``failing`` is set; after ``SPIN`` failures in a row it answers EAGAIN, so that an
    accept loop that retries at once ends its round instead of hanging the test."""

    SPIN = 100
    failing = True
    accepts = 0

    def accept(self) -> Any:
        cls = type(self)
        cls.accepts += 1
        if cls.failing:
            if cls.accepts > cls.SPIN:
                raise BlockingIOError(errno.EAGAIN, "a spinning accept loop stops here")
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_accept_failing_pauses_instead_of_spinning_then_serves(
    bridge: pdk_bridge.PluginBridge, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "edge_plugins.pdk_bridge")
    path = str(tmp_path / "wire.sock")
    listener = _FailingListener(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    serving = pdk_bridge._Listener(bridge, listener, bridge.hub.loop)
    client = gevent_socket.socket(gevent_socket.AF_UNIX, gevent_socket.SOCK_STREAM)
    client.connect(path)
    with gevent.Timeout(5):  # a hang guard only: nothing below depends on how long it takes
        while not _FailingListener.accepts:
            gevent.sleep(0)
    for _ in range(20):  # the hub polls its sockets; a listener still watched accepts again
        gevent.sleep(0.001)
    # One failed accept, then no other while the pause runs, though the listener stays
    # readable: a loop retrying at once would have failed SPIN times.
    assert _FailingListener.accepts == 1 and serving.pause.active
    assert "cannot accept" in caplog.text
    _FailingListener.failing = False
    kong = Connection(client)
    with gevent.Timeout(5):
        error, info = kong.call("plugin.GetPluginInfo", "wire")
    assert error is None and info["Name"] == "wire"
    # After the pause: the connection, then the EAGAIN that ends the round.
    assert _FailingListener.accepts == 3
