"""Plugin servers: querying, starting, respawning, and the per-worker event bridge.

Sources: kong/runloop/plugin_servers/process.lua (query command, process management),
kong/runloop/plugin_servers/plugin.lua (instances, phase closures, saved log data),
kong/runloop/plugin_servers/rpc/mp_rpc.lua (bridge loop, error handling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kong_harness import pdk
from kong_harness.conf import PluginServerDef
from kong_harness.rpc import MsgpackRpcClient, RpcError, lua_args
from kong_harness.schema import validate_plugin_schema

log = logging.getLogger("kong_harness.plugin_servers")

RESPAWN_INTERVAL = 1.0  # process.lua: next_spawn = ngx.now() + 1


class PluginServerError(RuntimeError):
    """A plugin server could not be queried or its dump is unusable."""


class PluginAborted(Exception):
    """The phase handler threw: StartInstance failed or a PDK call raised a Lua error."""


@dataclass(frozen=True)
class ExternalPlugin:
    """What Kong keeps of a plugin server's dump (process.lua query_external_plugin_info)."""

    name: str
    priority: int
    version: str | None
    phases: tuple[str, ...]
    schema: Mapping[str, Any]
    server: PluginServerDef


def query_plugin_info(server: PluginServerDef, timeout: float = 30.0) -> ExternalPlugin:
    """Run the query command; stdout must be pure JSON; only element 0 is used (Kong 3.9+)."""
    proc = subprocess.run(  # noqa: S602 - Kong runs it through a shell too (io.popen)
        server.query_command, shell=True, capture_output=True, timeout=timeout, check=False
    )
    try:
        dump = json.loads(proc.stdout)
    except ValueError as exc:
        raise PluginServerError(
            f"failed decoding plugin info: {exc} (query command {server.query_command!r} "
            f"exited {proc.returncode}; stderr: {proc.stderr.decode(errors='replace')[-500:]})"
        ) from exc
    if not isinstance(dump, list | dict):
        raise PluginServerError(f"not a plugin info table: \n{server.query_command}\n{dump}")
    infos = dump.get("Plugins", dump) if isinstance(dump, dict) else dump
    if not infos:
        raise PluginServerError(f"plugin server {server.name} dumped no plugin")
    info = infos[0]
    schema = info.get("Schema")
    validate_plugin_schema(schema)
    return ExternalPlugin(
        name=info["Name"],
        priority=int(info.get("Priority") or 0),
        version=info.get("Version"),
        phases=tuple(info.get("Phases") or ()),
        schema=schema,
        server=server,
    )


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a plugin server inherits: an nginx worker's environment, which is ``TZ`` only.

    Worker 0 spawns the servers (process.lua ``start_pluginservers``: ``ngx_pipe.spawn``
    of ``exec <start_cmd>``), and nginx rebuilds a worker's environment from ``TZ`` and the
    ``env`` directives alone; Kong's templates (kong/templates/nginx.lua) write none unless
    an operator injects ``nginx_main_env``. The query command, by contrast, runs in the
    master with the full environment (process.lua ``io.popen``).
    """
    environ = os.environ if environ is None else environ
    return {"TZ": environ["TZ"]} if "TZ" in environ else {}


class PluginServerProcess:
    """Starts a server, logs its output, respawns it at most once a second, stops it."""

    def __init__(self, server: PluginServerDef, env: Mapping[str, str] | None = None) -> None:
        self.server = server
        self.env = worker_environment() if env is None else dict(env)
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    async def start(self) -> None:
        if self.server.start_command is None:
            log.warning(
                "start_command undefined for pluginserver %s; assuming external process management",
                self.server.name,
            )
            return
        self._task = asyncio.create_task(self._supervise(), name=f"ps-{self.server.name}")

    async def _supervise(self) -> None:
        command = self.server.start_command
        assert command is not None  # start() supervises only a server with a start_command
        next_spawn = 0.0
        while not self._stopping:
            delay = next_spawn - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            log.info("[pluginserver] starting pluginserver process for %s", self.server.name)
            self.proc = await asyncio.create_subprocess_shell(
                "exec " + command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
            next_spawn = time.monotonic() + RESPAWN_INTERVAL
            log.info("[pluginserver] started, pid %s", self.proc.pid)
            await self._grab_logs(self.proc)
            status = await self.proc.wait()
            if status == 127:
                log.error(
                    '[pluginserver] external pluginserver "%s" start command "%s" exited '
                    'with "command not found"',
                    self.server.name,
                    self.server.start_command,
                )
                break
            log.info("external pluginserver '%s' terminated: exit %s", self.server.name, status)
        log.info("[pluginserver] exiting: pluginserver '%s' not respawned.", self.server.name)

    async def _grab_logs(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        plugin_log = logging.getLogger(f"kong_harness.plugin_server.{self.server.name}")
        prefix = f"[{self.server.name}:{proc.pid}] "
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                plugin_log.info("%s%s", prefix, line)

    async def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the socket accepts connections (Kong just retries on connect errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_unix_connection(self.server.socket)
                writer.close()
                return
            if self._task is not None and self._task.done():
                break
            await asyncio.sleep(0.05)
        raise PluginServerError(
            f"plugin server {self.server.name} did not open "
            f"{self.server.socket} within {timeout:.0f}s"
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """For fault tests: kill the running server (the supervisor respawns it)."""
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class _Instance:
    id: int | None
    seq: int


@dataclass
class PluginWorker:
    """One simulated nginx worker's view of one external plugin.

    Kong keeps ``running_instances`` and the RPC object per worker, so instance state on
    ``self`` in a plugin is per worker (plugin.lua).
    """

    plugin: ExternalPlugin
    rpc: MsgpackRpcClient
    fail_open: bool = True
    # Tells every worker to forget this plugin's instances (Kong's worker event
    # "plugin_server"/"reset_instances", registered in plugin_servers/init.lua).
    reset_everywhere: Callable[[str], None] | None = None
    instances: dict[str, _Instance] = field(default_factory=dict)
    server_pid: int | None = None
    _starting: dict[str, asyncio.Future[int]] = field(default_factory=dict)

    def notification(self, label: str, args: Any) -> None:
        """plugin.lua ``Rpc:notification``: only ``serverPid`` is known. A pid other than
        the one seen before means a restarted server: forget this worker's instances of
        the plugin (``rpc_notifications:serverPid``)."""
        if label != "serverPid":
            return
        pid = int(args)
        if self.server_pid is not None and pid != self.server_pid:
            self.instances.clear()
        self.server_pid = pid

    async def instance_id(self, conf: Mapping[str, Any]) -> int:
        """plugin.lua get_instance_id: one instance per plugin id and config sequence."""
        key = conf["__plugin_id"]
        known = self.instances.get(key)
        if known and known.id is not None and known.seq == conf["__seq__"]:
            return known.id
        pending = self._starting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            status = await self.rpc.call(
                "plugin.StartInstance",
                {"Name": self.plugin.name, "Config": json.dumps(conf)},
            )
        except RpcError as exc:
            log.error("starting instance: %s", exc)
            future.set_exception(PluginAborted(str(exc)))
            future.exception()  # retrieved: waiting requests re-raise it themselves
            raise PluginAborted(str(exc)) from exc
        finally:
            del self._starting[key]
        old = known.id if known else None
        self.instances[key] = _Instance(id=status["Id"], seq=conf["__seq__"])
        future.set_result(status["Id"])
        if old is not None:
            with contextlib.suppress(RpcError):
                await self.rpc.call("plugin.CloseInstance", old)
        return status["Id"]

    def reset_instances(self) -> None:
        self.instances.clear()

    async def handle_event(
        self, conf: Mapping[str, Any], phase: str, ctx: pdk.RequestContext, _retried: bool = False
    ) -> None:
        """mp_rpc.lua ``Rpc:handle_event``: errors are logged and the request goes on."""
        ctx.phase = phase
        ctx.plugin_name = self.plugin.name
        instance_id = await self.instance_id(conf)
        try:
            await self._bridge_loop(instance_id, phase, ctx)
        except RpcError as exc:
            message = str(exc)
            if "no plugin instance" in message.lower() and not _retried:
                # The server restarted and lost its instances: plugin.lua reset_instance
                # clears them in this worker and, through a worker event, in all the others,
                # then handle_event retries (Kong without bound; once here).
                log.warning("%s", message)
                self.reset_instances()
                if self.reset_everywhere is not None:
                    self.reset_everywhere(self.plugin.name)
                await self.handle_event(conf, phase, ctx, _retried=True)
                return
            log.error("[%s] %s", self.plugin.name, message)
            if not self.fail_open:
                raise PluginAborted(message) from exc

    async def _bridge_loop(self, instance_id: int, phase: str, ctx: pdk.RequestContext) -> None:
        step_in = await self.rpc.call(
            "plugin.HandleEvent", {"InstanceId": instance_id, "EventName": phase}
        )
        event_id = step_in["EventId"]
        while step_in["Data"] != "ret":
            data = step_in["Data"]
            try:
                step_method, result = pdk.call(ctx, data["Method"], lua_args(data.get("Args")))
            except pdk.LuaError as exc:
                log.error("[%s] PDK call %s failed: %s", self.plugin.name, data["Method"], exc)
                raise PluginAborted(str(exc)) from exc
            step_in = await self.rpc.call(step_method, {"EventId": event_id, "Data": result})
