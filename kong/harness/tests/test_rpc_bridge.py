"""Kong's side of the MessagePack-RPC conversation, against a scripted plugin server.

Source: kong/runloop/plugin_servers/rpc/mp_rpc.lua (framing, bridge_loop, typed Step
methods, terminal exit) and plugin.lua (instances per plugin id and __seq__).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness_test_support import CONF, ScriptedServer, scripted_worker

from kong_harness import pdk
from kong_harness.plugin_servers import PluginAborted
from kong_harness.rpc import MsgpackRpcClient, RpcError, lua_args


def _ctx(**kw: Any) -> pdk.RequestContext:
    base = dict(
        method="GET",
        scheme="http",
        host="h",
        port=8000,
        raw_path="/p",
        raw_query="",
        http_version=1.1,
        headers=[("X-A", "1")],
        body=b"",
        peer_ip="127.0.0.1",
        remote_addr="127.0.0.1",
        request_id="r" * 32,
        start_time=0.0,
        node_id="n",
        trusted=lambda ip: False,
        phase="access",
    )
    base.update(kw)
    return pdk.RequestContext(**base)


async def test_framing_start_instance_and_step_loop() -> None:
    steps = iter(
        [
            {"Method": "kong.request.get_headers", "Args": []},
            {"Method": "kong.service.request.set_header", "Args": ["X-B", "2"]},
            "ret",
        ]
    )
    server = ScriptedServer(
        {
            "plugin.StartInstance": {"Id": 7, "Name": "demo", "Config": {}},
            "plugin.HandleEvent": lambda a: (None, {"EventId": 3, "Data": next(steps)}),
            "plugin.StepMultiMap": lambda a: (None, {"EventId": 3, "Data": next(steps)}),
            "plugin.Step": lambda a: (None, {"EventId": 3, "Data": next(steps)}),
        }
    )
    async with server:
        ctx = _ctx()
        await scripted_worker(server.path).handle_event(CONF, "access", ctx)
    kinds = [(m[0], m[2]) for m in server.received]
    assert kinds == [
        (0, "plugin.StartInstance"),
        (0, "plugin.HandleEvent"),
        (0, "plugin.StepMultiMap"),
        (0, "plugin.Step"),
    ]
    start = server.received[0][3][0]
    assert start["Name"] == "demo" and '"__seq__": 1' in start["Config"]
    assert '"x": null' in start["Config"]  # the bridge sends the conf it is given
    assert server.received[1][3] == [{"InstanceId": 7, "EventName": "access"}]
    assert server.received[2][3] == [{"EventId": 3, "Data": {"x-a": ["1"]}}]
    assert ctx.header_values("X-B") == ["2"]
    ids = [m[1] for m in server.received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_exit_is_terminal_no_reply_is_sent() -> None:
    server = ScriptedServer(
        {
            "plugin.StartInstance": {"Id": 1},
            "plugin.HandleEvent": {
                "EventId": 1,
                "Data": {"Method": "kong.response.exit", "Args": [401, {"message": "no"}, None]},
            },
        }
    )
    async with server:
        ctx = _ctx()
        with pytest.raises(pdk.Terminated):
            await scripted_worker(server.path).handle_event(CONF, "access", ctx)
        await asyncio.sleep(0.2)
    assert [m[2] for m in server.received] == ["plugin.StartInstance", "plugin.HandleEvent"]
    assert ctx.exit is not None and ctx.exit.status == 401


async def test_nil_err_is_a_plain_step_and_a_nil_raw_body_aborts() -> None:
    """Kong 3.9.3 mp_rpc.lua call_pdk_method returns only ``ret``, so get_step_method never
    answers plugin.StepError: kong.client.get_protocol's ``nil, "No active route found"``
    is plugin.Step with nil. kong.request.get_raw_body of a body buffered to a file
    (kong/pdk/request.lua: ``nil, "request body did not fit …"``) goes through fix_raw,
    whose binary packer takes ``#nil`` and throws: Kong aborts, the server hears nothing."""
    steps = iter(
        [
            {"Method": "kong.client.get_protocol", "Args": []},
            {"Method": "kong.request.get_raw_body", "Args": []},
        ]
    )
    server = ScriptedServer(
        {
            "plugin.StartInstance": {"Id": 1},
            "plugin.HandleEvent": lambda a: (None, {"EventId": 1, "Data": next(steps)}),
            "plugin.Step": lambda a: (None, {"EventId": 1, "Data": next(steps)}),
        }
    )
    async with server:
        ctx = _ctx(body=b"x" * 9000)
        with pytest.raises(PluginAborted, match="attempt to get length"):
            await scripted_worker(server.path).handle_event(CONF, "access", ctx)
        await asyncio.sleep(0.2)
    assert [m[2] for m in server.received] == [
        "plugin.StartInstance",
        "plugin.HandleEvent",
        "plugin.Step",
    ]
    assert server.received[2][3] == [{"EventId": 1, "Data": None}]


async def test_event_error_fails_open_and_no_instance_restarts() -> None:
    calls = {"start": 0, "event": 0}

    def start(args: Any) -> tuple[None, dict]:
        calls["start"] += 1
        return None, {"Id": calls["start"]}

    def event(args: Any) -> tuple[str | None, Any]:
        calls["event"] += 1
        if calls["event"] == 1:
            return "no plugin instance #1", None
        if calls["event"] == 2:
            return "boom", None
        return None, {"EventId": 1, "Data": "ret"}

    server = ScriptedServer(
        {"plugin.StartInstance": start, "plugin.HandleEvent": event, "plugin.CloseInstance": {}}
    )
    async with server:
        worker = scripted_worker(server.path)
        await worker.handle_event(CONF, "access", _ctx())  # restart, then "boom": logged
        await worker.handle_event(CONF, "access", _ctx())
        worker.fail_open = False
        calls["event"] = 1
        with pytest.raises(PluginAborted, match="boom"):
            await worker.handle_event(CONF, "access", _ctx())
    assert calls["start"] == 2


async def test_unreachable_server_is_a_connection_error() -> None:
    client = MsgpackRpcClient("/nonexistent/socket", timeout=1)
    with pytest.raises(RpcError, match="trying to connect"):
        await client.call("plugin.GetStatus")


async def test_arguments_after_a_nil_never_reach_the_pdk() -> None:
    """kong-pdk sends ``[503, None, headers]``; lua-MessagePack's ``unpack_array`` fills a
    fresh table index by index, leaving a hole, and mp_rpc.lua ``call_pdk_method`` calls
    ``method(unpack(args))``: LuaJIT stops at the hole, so Kong runs ``error(503)`` and the
    headers are lost."""
    server = ScriptedServer(
        {
            "plugin.StartInstance": {"Id": 1},
            "plugin.HandleEvent": {
                "EventId": 1,
                "Data": {
                    "Method": "kong.response.error",
                    "Args": [503, None, {"Retry-After": "1"}],
                },
            },
        }
    )
    async with server:
        ctx = _ctx()
        with pytest.raises(pdk.Terminated):
            await scripted_worker(server.path).handle_event(CONF, "access", ctx)
    assert ctx.exit is not None and ctx.exit.status == 503
    assert not any(name.lower() == "retry-after" for name, _ in ctx.exit.headers)
    assert b"The upstream server is currently unavailable" in ctx.exit.body


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ([503, None, {"Retry-After": "1"}], [503]),
        ([None, "x"], []),
        ([401, "Unauthorized", None], [401, "Unauthorized"]),
        (["X-A", "1"], ["X-A", "1"]),
        ("edge.subject", ["edge.subject"]),  # a non-table argument is the only one
        (None, []),
    ],
)
def test_lua_args(sent: Any, received: list[Any]) -> None:
    assert lua_args(sent) == received
