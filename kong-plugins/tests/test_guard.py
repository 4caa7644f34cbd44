"""The guard against kong-pdk 0.36's failure modes, on kong-pdk's own PluginServer.

kong_pdk/server.py is driven directly (the same calls its socket listener makes), so what
the plugin sends back is exactly what Kong would receive. The socket-level hangs are shown
end to end in tests/e2e/test_guard.py.
"""

from __future__ import annotations

import gc
from typing import Any

import gevent
import pytest
from kong_pdk.module import Module
from kong_pdk.server import PluginServer

from edge_plugins.guard import (
    DecidedRejection,
    FailurePolicy,
    RequestEnded,
    answering_rejection,
    error_request,
    exit_request,
    guarded,
)
from tests.support.recording_kong import RecordingKong


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
    return sum(
        1
        for g in gc.get_objects()
        if issubclass(type(g), gevent.Greenlet) and not g.dead and "_handler_event_func" in repr(g)
    )


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


@pytest.mark.parametrize(
    ("end", "args", "sent"),
    [
        # kong.response.error(503, None, headers) would reach Kong as error(503): the message
        # is Kong's own default text instead (kong/pdk/response.lua get_http_error_message).
        (
            error_request,
            (503, None, {"Retry-After": "1"}),
            (
                "kong.response.error",
                (503, "The upstream server is currently unavailable", {"Retry-After": "1"}),
            ),
        ),
        (
            error_request,
            (599, None, {"Retry-After": "1"}),
            (
                "kong.response.error",
                (599, "The upstream server responded with 599", {"Retry-After": "1"}),
            ),
        ),
        (
            error_request,
            (401, "Unauthorized", {"WWW-Authenticate": "Bearer"}),
            ("kong.response.error", (401, "Unauthorized", {"WWW-Authenticate": "Bearer"})),
        ),
        (error_request, (500, None, None), ("kong.response.error", (500,))),
        # exit(204, None, headers): an empty body is "" (the same response on the wire).
        (
            exit_request,
            (204, None, {"X-Reason": "none"}),
            ("kong.response.exit", (204, "", {"X-Reason": "none"})),
        ),
        (
            exit_request,
            (403, {"message": "no"}, None),
            ("kong.response.exit", (403, {"message": "no"})),
        ),
    ],
)
def test_terminal_calls_send_no_none_before_a_later_argument(
    end: Any, args: tuple[Any, ...], sent: tuple[str, tuple[Any, ...]]
) -> None:
    """Kong calls the PDK with ``unpack(args)`` on a table built by lua-MessagePack
    (kong/runloop/plugin_servers/rpc/mp_rpc.lua ``call_pdk_method``): everything after a
    ``nil`` is lost. RecordingKong records what Kong would receive."""
    kong = RecordingKong()
    with pytest.raises(RequestEnded):
        end(kong, *args)
    assert kong.calls == [sent]


def _fail_building_a_rejection(kong: Any) -> None:
    kong.request.get_header("x-request-id")
    with answering_rejection(429, {"Retry-After": "7"}):
        raise Boom("while building the 429")


def test_a_decided_rejection_that_fails_is_still_answered_under_fail_open() -> None:
    """The failure policy governs undecided requests: a rejection already decided is
    answered with Kong's error of its status even when the plugin fails open."""
    server, iid = _server(_plugin(FailurePolicy.OPEN, _fail_building_a_rejection))
    with gevent.Timeout(5):
        first = server.handle_event({"InstanceId": iid, "EventName": "access"})
        answer = server.step({"EventId": first["EventId"], "Data": None})
    assert answer["Data"] == {
        "Method": "kong.response.error",
        "Args": (429, "Too many requests", {"Retry-After": "7"}),
    }


def test_a_decided_rejection_falls_back_to_the_bare_status() -> None:
    """If Kong's error with the headers cannot be sent either, the status still is."""

    def refuse_headers(*args: Any) -> None:
        if len(args) > 1:
            raise Boom("headers")

    plugin = _plugin(FailurePolicy.OPEN, _fail_building_a_rejection)(config={})
    kong = RecordingKong({"kong.response.error": refuse_headers})
    plugin.access(kong)
    assert kong.calls[1:] == [
        ("kong.response.error", (429, "Too many requests", {"Retry-After": "7"})),
        ("kong.response.error", (429,)),
    ]


def test_a_decided_rejection_in_the_log_phase_only_logs() -> None:
    server, iid = _server(_plugin(FailurePolicy.CLOSED, _fail_building_a_rejection))
    with gevent.Timeout(5):
        first = server.handle_event({"InstanceId": iid, "EventName": "log"})
        answer = server.step({"EventId": first["EventId"], "Data": None})
    assert answer["Data"] == "ret"


def test_answering_rejection_passes_an_answer_and_wraps_a_failure() -> None:
    with pytest.raises(RequestEnded), answering_rejection(429):
        raise RequestEnded
    with pytest.raises(DecidedRejection) as caught, answering_rejection(503, {"Retry-After": "1"}):
        raise Boom("json")
    assert (caught.value.status, caught.value.headers) == (503, {"Retry-After": "1"})
    assert isinstance(caught.value.__cause__, Boom)
