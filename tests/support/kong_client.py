"""Kong's side of the plugin-server protocol, played message by message for the bridge tests.

kong/runloop/plugin_servers/rpc/mp_rpc.lua: ``Rpc:call`` sends ``[0, id, method, {args}]``
and reads objects until its answer ``[1, id, err, result]``, handing ``[2, label, args]``
notifications to plugin.lua on the way; ``bridge_loop`` answers each PDK call the handler
makes with the Step method ``get_step_method`` picks, until ``"ret"``; a terminal call
(``kong.response.exit``/``error``) ends the request, so no Step follows it. Strings go out
as MessagePack ``str`` whatever their bytes (lua-MessagePack), here through lone
surrogates (``surrogateescape``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

TERMINAL = ("kong.response.exit", "kong.response.error")
# mp_rpc.lua get_step_method: by_pdk_method
TYPED_STEPS = {
    "kong.client.get_credential": "plugin.StepCredential",
    "kong.client.load_consumer": "plugin.StepConsumer",
    "kong.client.get_consumer": "plugin.StepConsumer",
    "kong.client.authenticate": "plugin.StepCredential",
    "kong.node.get_memory_stats": "plugin.StepMemoryStats",
    "kong.router.get_route": "plugin.StepRoute",
    "kong.router.get_service": "plugin.StepService",
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
}
# What the PDK answers: (result, error); an error goes back with plugin.StepError.
Answer = Callable[[str, list[Any]], tuple[Any, str | None]]


@dataclass
class Connection:
    """One socket to the plugin server, as one of Kong's pooled connections."""

    sock: socket.socket
    unpacker: msgpack.Unpacker = field(init=False)
    notifications: list[list[Any]] = field(default_factory=list)
    msg_id: int = 0

    def __post_init__(self) -> None:
        self.unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )

    def send(self, method: str, *args: Any) -> int:
        self.msg_id += 1
        self.sock.sendall(
            msgpack.packb([0, self.msg_id, method, list(args)], unicode_errors="surrogateescape")
        )
        return self.msg_id

    def receive(self, msg_id: int) -> tuple[str | None, Any]:
        """The answer to ``msg_id``: (error, result); notifications are kept aside."""
        while True:
            for obj in self.unpacker:
                if obj[0] == 2:
                    self.notifications.append(obj)
                    continue
                assert obj[0] == 1 and obj[1] == msg_id, obj
                return obj[2], obj[3]
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("plugin server closed the connection")
            self.unpacker.feed(data)

    def call(self, method: str, *args: Any) -> tuple[str | None, Any]:
        return self.receive(self.send(method, *args))


class Event:
    """One ``HandleEvent`` and its Step loop (mp_rpc.lua ``bridge_loop``), recording the
    traffic: what Kong sent and what it got back, ids left out."""

    def __init__(self, conn: Connection, instance_id: int, phase: str, answer: Answer) -> None:
        self.conn, self.answer = conn, answer
        self.traffic: list[Any] = [("HandleEvent", phase)]
        self.pending = conn.send(
            "plugin.HandleEvent", {"InstanceId": instance_id, "EventName": phase}
        )
        self.done = False

    def advance(self) -> None:
        """Read the answer in flight; send the next Step unless the event is over."""
        error, result = self.conn.receive(self.pending)
        if error is not None:
            self.traffic.append(("error", error))
            self.done = True
            return
        data = result["Data"]
        self.traffic.append(("data", data))
        if data == "ret" or data["Method"] in TERMINAL:
            self.done = True
            return
        value, err = self.answer(data["Method"], list(data["Args"]))
        method = (
            "plugin.StepError"
            if err is not None
            else TYPED_STEPS.get(data["Method"], "plugin.Step")
        )
        payload = err if err is not None else value
        self.traffic.append((method, payload))
        self.pending = self.conn.send(method, {"EventId": result["EventId"], "Data": payload})

    def run(self) -> list[Any]:
        while not self.done:
            self.advance()
        return self.traffic


class PluginServer:
    """A plugin server process started as Kong's process.lua would, and connections to it."""

    def __init__(self, path: Path, flags: list[str], plugin: Path) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(plugin),
                "-p",
                str(path.parent),
                "--socket-name",
                path.name,
                *flags,
            ],
            env={"TZ": os.environ.get("TZ", "UTC"), "PATH": os.environ.get("PATH", "")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plugin server did not start: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.02)

    def connect(self) -> Connection:
        for _ in range(500):  # the socket file exists from bind(), connections from listen()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            try:
                sock.connect(str(self.path))
            except ConnectionRefusedError:
                sock.close()
                time.sleep(0.01)
                continue
            return Connection(sock)
        raise ConnectionRefusedError(f"plugin server at {self.path} does not listen")

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        return err.decode(errors="replace")


@contextmanager
def plugin_server(flags: list[str], plugin: Path) -> Iterator[PluginServer]:
    with tempfile.TemporaryDirectory(prefix="pb-") as directory:
        server = PluginServer(Path(directory) / "corpus.socket", flags, plugin)
        try:
            yield server
        finally:
            server.stop()


def start_instance(conn: Connection, name: str, config: dict[str, Any]) -> int:
    error, status = conn.call("plugin.StartInstance", {"Name": name, "Config": json.dumps(config)})
    assert error is None, error
    return int(status["Id"])
