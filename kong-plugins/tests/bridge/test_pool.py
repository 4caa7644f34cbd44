"""edge_plugins.pdk_bridge's pooled greenlets, in process (no socket): one greenlet serves
event after event, comes back to the pool after a terminal call, a failure or a PDK call
Kong never answered, and never carries one event's context variables into the next."""

from __future__ import annotations

import contextvars
import os
import tempfile
from typing import Any

import gevent
import gevent.socket
import pytest
from kong_pdk.exception import PDKException

from edge_plugins.guard import exit_request
from edge_plugins.pdk_bridge import PluginBridge, PluginServerError, serve
from tests.support.in_process_bridge import handle_event, step
from tests.support.kong_client import Connection

SEEN = contextvars.ContextVar("pool_seen", default="fresh")


class _Plugin:
    mode = "call"
    raised: list[BaseException] = []  # what the PDK call raised in the handler

    def __init__(self, config: Any) -> None:
        pass

    def access(self, kong: Any) -> None:
        before = SEEN.get()
        SEEN.set("left behind")
        if _Plugin.mode == "exit":
            exit_request(kong, 403)  # unguarded: RequestEnded escapes the handler
        if _Plugin.mode == "raise":
            raise ValueError("a bug")
        try:
            kong.service.request.set_header("x-seen", before)
        except PDKException as exc:
            _Plugin.raised.append(exc)
            raise


@pytest.fixture
def bridge() -> PluginBridge:
    bridge = PluginBridge("pool", _Plugin, hub=gevent.get_hub())
    bridge.start_instance({"Name": "pool", "Config": "{}"})
    return bridge


def _event(bridge: PluginBridge, mode: str) -> Any:
    _Plugin.mode = mode
    error, answer = handle_event(bridge, next(iter(bridge.instances)))
    if error:
        return error
    if answer["Data"] != "ret" and mode == "call":
        assert step(bridge, answer["EventId"], None) == (
            None,
            {"Data": "ret", "EventId": answer["EventId"]},
        )
    return answer["Data"]


def test_one_pooled_greenlet_serves_every_event_in_a_fresh_context(bridge: PluginBridge) -> None:
    answers = [_event(bridge, "call") for _ in range(3)]
    assert (
        answers == [{"Method": "kong.service.request.set_header", "Args": ("x-seen", "fresh")}] * 3
    )
    assert len(bridge.idle) == 1 and not bridge.events


def test_after_an_unguarded_exit_the_greenlet_is_back_in_the_pool(bridge: PluginBridge) -> None:
    assert _event(bridge, "exit") == {"Method": "kong.response.exit", "Args": (403, None)}
    worker = bridge.idle[0]
    assert _event(bridge, "call")["Args"] == ("x-seen", "fresh")
    assert bridge.idle == [worker] and not bridge.events


def test_a_raising_handler_is_an_rpc_error_and_the_greenlet_is_reused(bridge: PluginBridge) -> None:
    assert _event(bridge, "raise") == "plugin handler failed: ValueError"
    worker = bridge.idle[0]
    assert _event(bridge, "call")["Args"] == ("x-seen", "fresh")
    assert bridge.idle == [worker] and not bridge.events


def test_an_event_whose_pdk_call_kong_never_answers_is_ended_at_the_second_sweep(
    bridge: PluginBridge,
) -> None:
    # mp_rpc.lua call_pdk_method runs the PDK method without pcall: a Lua error there ends
    # bridge_loop, and no Step ever answers the call. kong-pdk parks such a greenlet forever.
    _Plugin.raised.clear()
    error, call = handle_event(bridge, next(iter(bridge.instances)))
    assert error is None and call["Data"]["Method"] == "kong.service.request.set_header"
    assert bridge.abandon_stalled() == 0, "the first sweep only notes what waits"
    assert bridge.events and not bridge.idle
    assert bridge.abandon_stalled() == 1, "still waiting on the same call: Kong gave up"
    assert not bridge.events and len(bridge.idle) == 1
    assert [str(e) for e in _Plugin.raised] == ["no answer from Kong: the request is over"]
    # Kong's late Step, if ever, finds no event; the greenlet serves the next one.
    with pytest.raises(PluginServerError, match=f"^event id {call['EventId']} not found$"):
        step(bridge, call["EventId"], None)
    assert _event(bridge, "call")["Args"] == ("x-seen", "fresh")
    assert not bridge.events and len(bridge.idle) == 1


def test_an_event_that_moves_on_between_sweeps_is_not_ended(bridge: PluginBridge) -> None:
    class TwoCalls(_Plugin):
        def access(self, kong: Any) -> None:
            kong.request.get_method()
            kong.service.request.set_header("x-seen", "twice")

    bridge.plugin = TwoCalls
    iid = bridge.start_instance({"Name": "pool", "Config": "{}"})["Id"]
    _error, first = handle_event(bridge, iid)
    assert bridge.abandon_stalled() == 0
    _error, second = step(bridge, first["EventId"], "GET")  # Kong answered: the next call
    assert second["Data"]["Method"] == "kong.service.request.set_header"
    assert bridge.abandon_stalled() == 0, "a new call since the last sweep"
    assert step(bridge, first["EventId"], None) == (
        None,
        {"Data": "ret", "EventId": first["EventId"]},
    )
    assert not bridge.events


def test_serve_sweeps_for_events_kong_gave_up_on(bridge: PluginBridge) -> None:
    # The sweep serve() starts, on a real socket: an event whose call is never answered
    # comes back to the pool without any further message from Kong.
    path = os.path.join(tempfile.mkdtemp(), "pool.sock")
    server = gevent.spawn(serve, bridge, path, stalled_sweep_seconds=0.05)
    try:
        with gevent.Timeout(30):  # a hang guard; the sweep runs every 0.05 s
            while not os.path.exists(path):
                gevent.sleep(0.01)
            sock = gevent.socket.socket(gevent.socket.AF_UNIX, gevent.socket.SOCK_STREAM)
            sock.connect(path)
            conn = Connection(sock)  # type: ignore[arg-type]  # gevent's socket, same calls
            iid = next(iter(bridge.instances))
            event = {"InstanceId": iid, "EventName": "access"}
            error, call = conn.call("plugin.HandleEvent", event)
            assert error is None and call["Data"]["Method"] == "kong.service.request.set_header"
            while bridge.events or not bridge.idle:
                gevent.sleep(0.01)
            sock.close()
    finally:
        server.kill()
    # Killed, serve() leaves nothing on the hub: the listener is closed (and the sweep and
    # the watchdog stopped with it).
    refused = gevent.socket.socket(gevent.socket.AF_UNIX, gevent.socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError):
        refused.connect(path)
    refused.close()
