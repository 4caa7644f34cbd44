"""edge_plugins.pdk_bridge's pooled greenlets, in process (no socket): one greenlet serves
event after event, comes back to the pool after a terminal call or a failure, and never
carries one event's context variables into the next."""

from __future__ import annotations

import contextvars
from typing import Any

import gevent
import pytest

from edge_plugins.guard import exit_request
from edge_plugins.pdk_bridge import PluginBridge
from tests.support.in_process_bridge import handle_event, step

SEEN = contextvars.ContextVar("pool_seen", default="fresh")


class _Plugin:
    mode = "call"

    def __init__(self, config: Any) -> None:
        pass

    def access(self, kong: Any) -> None:
        before = SEEN.get()
        SEEN.set("left behind")
        if _Plugin.mode == "exit":
            exit_request(kong, 403)  # unguarded: RequestEnded escapes the handler
        if _Plugin.mode == "raise":
            raise ValueError("a bug")
        kong.service.request.set_header("x-seen", before)


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
