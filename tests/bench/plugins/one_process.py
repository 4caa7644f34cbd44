"""``make bench`` only: edge-trace, edge-jwt and edge-rate-limit served by one process on
one socket, to measure what one process would save on the chain (tests/bench/chain.py
"edge chain, one process"; docs/plugin-runtime.md says what it would cost). Not a
deployment: no metrics endpoint, log lines under one service name.

Kong 3.9.3 would drive it as three ``pluginserver_*`` entries naming the same socket, the
start command on one of them (kong/conf_loader/init.lua, process.lua); its RPC objects
then share the socket's keepalive pool (rpc/mp_rpc.lua ``Rpc:call``), so any message may
arrive on any connection: each is routed to its plugin's bridge by plugin name
(``StartInstance``, ``GetPluginInfo``), instance id (``HandleEvent``, ``CloseInstance``,
``InstanceStatus``) or event id (the ``Step`` methods), the event ids of each bridge in a
range of their own. ``--dump`` is edge-trace's: the entry that carries the start command.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

if __name__ == "__main__" and not any(a in ("--dump", "-dump") for a in sys.argv[1:]):
    from gevent import monkey

    monkey.patch_all()

from edge_plugins import edge_jwt, edge_rate_limit, edge_trace, logs, pdk_bridge

PLUGINS = (
    (edge_trace, edge_trace.AccessOnlyPlugin),
    (edge_jwt, edge_jwt.Plugin),
    (edge_rate_limit, edge_rate_limit.Plugin),
)
EVENT_ID_RANGE = 2**40  # per bridge: ids stay exact in Kong's Lua numbers


def route(bridges: dict[str, pdk_bridge.PluginBridge]) -> pdk_bridge.PluginBridge:
    """The bridge that reads the socket, its RPC methods each routed to its plugin's."""
    all_bridges = list(bridges.values())
    first = all_bridges[0]

    def by_instance(iid: Any) -> pdk_bridge.PluginBridge:
        # A bridge that has it, else the first, which answers "no plugin instance".
        return next((b for b in all_bridges if iid in b.instances), first)

    def by_event(data: dict[str, Any]) -> pdk_bridge.PluginBridge:
        eid = data["EventId"]
        return next((b for b in all_bridges if eid in b.events), first)

    def by_name(name: str) -> pdk_bridge.PluginBridge:
        return bridges.get(name, first)

    methods: dict[str, Callable[..., Any]] = {
        "plugin.StartInstance": lambda cfg: by_name(cfg["Name"]).start_instance(cfg),
        "plugin.GetPluginInfo": lambda name: by_name(name).get_plugin_info(name),
        "plugin.CloseInstance": lambda iid: by_instance(iid).close_instance(iid),
        "plugin.InstanceStatus": lambda iid: by_instance(iid).instance_status(iid),
    }
    event_methods: dict[str, Callable[..., None]] = {
        "plugin.HandleEvent": lambda conn, msgid, event: by_instance(
            event["InstanceId"]
        ).handle_event(conn, msgid, event),
        "plugin.StepError": lambda conn, msgid, data: by_event(data).step_error(conn, msgid, data),
    }
    for method in first.event_methods:
        if method.startswith("plugin.Step") and method != "plugin.StepError":
            event_methods[method] = lambda conn, msgid, data: by_event(data).step(conn, msgid, data)
    first.methods = {**first.methods, **methods}
    first.event_methods = event_methods
    return first


def main() -> None:
    args = sys.argv[1:]
    if "--dump" in args or "-dump" in args:
        sys.argv = [sys.argv[0], "--dump"]
        edge_trace.main()  # element 0 of the entry's --dump (process.lua)
        return
    for name in ("edge_plugins.jwt.decision", "edge_plugins.jwt.state"):
        importlib.import_module(name)
    importlib.import_module("edge_plugins.ratelimit.enforcer")
    logs.configure("edge-plugins", sys.stderr)
    bridges = {}
    for index, (module, plugin) in enumerate(PLUGINS):
        bridge = pdk_bridge.PluginBridge(
            module.NAME, plugin, module.version, module.priority, module.Schema
        )
        bridge.next_event_id = index * EVENT_ID_RANGE
        bridges[module.NAME] = bridge
    serving = route(bridges)
    prefix = args[args.index("-p") + 1]
    socket_name = args[args.index("--socket-name") + 1]
    pdk_bridge.serve(serving, os.path.join(prefix, socket_name))


if __name__ == "__main__":
    main()
