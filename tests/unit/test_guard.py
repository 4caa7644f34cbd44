"""The guard against kong-pdk 0.36's failure modes, on kong-pdk's own PluginServer.

kong_pdk/server.py is driven directly (the same calls its socket listener makes), so what
the plugin sends back is exactly what Kong would receive. The socket-level hangs are shown
end to end in tests/harness/test_guard.py.
"""

from __future__ import annotations

import gc
from typing import Any

import gevent
import pytest
from kong_pdk.module import Module
from kong_pdk.server import PluginServer

from edge_plugins.guard import FailurePolicy, exit_request, guarded


class Boom(RuntimeError):
    pass


def _server(plugin_cls: type) -> tuple[PluginServer, int]:
    class Entry:
        Plugin = plugin_cls
        Schema: list[Any] = []
        version = "1"
        priority = 1

    server = PluginServer(use_gevent=True, name="t", lua_style=False)
    server.plugins["t"] = Module("t", module=Entry)
    return server, server.start_instance({"Name": "t", "Config": "{}"})["Id"]


def _plugin(policy: FailurePolicy, body: Any) -> type:
    class Plugin:
        failure_policy = policy

        def __init__(self, config: dict[str, Any]) -> None:
            pass

        @guarded
        def access(self, kong: Any) -> None:
            body(kong)

        @guarded
        def log(self, kong: Any) -> None:
            body(kong)

    return Plugin


def _raise_first(kong: Any) -> None:
    raise Boom("before any PDK call")


def _raise_after(kong: Any) -> None:
    kong.request.get_header("x")
    raise Boom("after a PDK call")


def test_raise_before_first_call_fails_closed_without_hanging() -> None:
    server, iid = _server(_plugin(FailurePolicy.CLOSED, _raise_first))
    with gevent.Timeout(5):
        answer = server.handle_event({"InstanceId": iid, "EventName": "access"})
    assert answer["Data"] == {"Method": "kong.response.error", "Args": (500,)}


def test_raise_before_first_call_fails_open() -> None:
    server, iid = _server(_plugin(FailurePolicy.OPEN, _raise_first))
    with gevent.Timeout(5):
        answer = server.handle_event({"InstanceId": iid, "EventName": "access"})
    assert answer["Data"] == "ret"


def test_raise_after_a_call_fails_closed_on_the_next_step() -> None:
    server, iid = _server(_plugin(FailurePolicy.CLOSED, _raise_after))
    with gevent.Timeout(5):
        first = server.handle_event({"InstanceId": iid, "EventName": "access"})
        assert first["Data"]["Method"] == "kong.request.get_header"
        answer = server.step({"EventId": first["EventId"], "Data": None})
    assert answer["Data"] == {"Method": "kong.response.error", "Args": (500,)}


def test_log_phase_failure_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    server, iid = _server(_plugin(FailurePolicy.CLOSED, _raise_first))
    with gevent.Timeout(5):
        answer = server.handle_event({"InstanceId": iid, "EventName": "log"})
    assert answer["Data"] == "ret"  # kong.response.* is not allowed in log: nothing to send
    assert "failed in log phase" in caplog.text


def _parked_handlers() -> int:
    gevent.sleep(0.05)
    # type(), not isinstance(): lazy objects elsewhere in the process (Django's) would
    # evaluate themselves on a __class__ lookup.
    return sum(1 for g in gc.get_objects()
               if issubclass(type(g), gevent.Greenlet) and not g.dead
               and "_handler_event_func" in repr(g))


@pytest.mark.parametrize("use_guard", [True, False])
def test_terminal_exit_parks_no_greenlet_with_the_guard(use_guard: bool) -> None:
    """kong-pdk drops the event after kong.response.exit, so the handler's final
    ch.put("ret") never finds a reader: without the guard, one greenlet per rejection."""

    def reject(kong: Any) -> None:
        kong.request.get_header("authorization")
        if use_guard:
            exit_request(kong, 401, {"message": "no"})
        else:
            kong.response.exit(401, {"message": "no"})

    plugin = _plugin(FailurePolicy.CLOSED, reject)
    server, iid = _server(plugin)
    before = _parked_handlers()
    with gevent.Timeout(5):
        for _ in range(20):
            first = server.handle_event({"InstanceId": iid, "EventName": "access"})
            answer = server.step({"EventId": first["EventId"], "Data": None})
            assert answer["Data"]["Method"] == "kong.response.exit"
    leaked = _parked_handlers() - before
    assert leaked == (0 if use_guard else 20)
