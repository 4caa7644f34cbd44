"""Doubles shared by the harness's tests: a scripted plugin server, a worker for it, a
one-route kong.yml (imported by name: pytest's ``pythonpath`` lists this directory)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from kong_harness.conf import PluginServerDef
from kong_harness.plugin_servers import ExternalPlugin, PluginWorker
from kong_harness.rpc import MsgpackRpcClient

CONF = {"__plugin_id": "p1", "__seq__": 1, "x": None}


class ScriptedServer:
    """A plugin server whose answers the test scripts; it records every request."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers  # method -> result, or a callable(args) -> (err, result)
        self.received: list[list[Any]] = []
        self.path = str(Path(tempfile.mkdtemp(prefix="rpc-")) / "s.sock")

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while data := await reader.read(65536):
            unpacker.feed(data)
            for msg in unpacker:
                self.received.append(msg)
                answer = self.answers[msg[2]]
                err, result = answer(msg[3]) if callable(answer) else (None, answer)
                writer.write(msgpack.packb([1, msg[1], err, result]))
                await writer.drain()


def scripted_worker(path: str) -> PluginWorker:
    """A worker of the `demo` plugin on a (scripted) server at ``path``."""
    server = PluginServerDef("demo", path, None, "")
    plugin = ExternalPlugin("demo", 1, "1", ("access",), {}, server)
    return PluginWorker(plugin, MsgpackRpcClient(path, timeout=2))


def demo_route_yml(upstream_port: int) -> str:
    """One service, one route (/p), the harness's edge-demo plugin on it."""
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}
        routes:
          - {{name: r, paths: [/p]}}
    plugins:
      - name: edge-demo
    """
