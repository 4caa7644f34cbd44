"""The plugin server's side of Kong's MessagePack-RPC: instances, events and PDK calls.

Kong 3.9.3 drives an external plugin over a Unix socket (kong/runloop/plugin_servers/
rpc/mp_rpc.lua): ``[0, id, "plugin.<Method>", [args]]`` in, ``[1, id, error, result]`` out,
``[2, label, args]`` notifications from the server before an answer. This module serves that
protocol for one plugin with kong-pdk's plugin-facing API (the ``kong`` object whose every
attribute path is a PDK method, ``Plugin(config)``, ``Schema``, ``version``, ``priority``)
and kong-pdk 0.36's answers (kong_pdk/server.py, kong_pdk/listener.py), so a plugin and
Kong see the same messages as with kong-pdk's own bridge. ``edge_plugins.server`` runs it;
``--kong-pdk-bridge`` on a start command runs kong-pdk's instead (docs/plugin-runtime.md).

What it does differently from kong-pdk, each for the Kong code it answers to:

* An event runs in a pooled greenlet that the connection's greenlet switches to directly,
  and back: no Channel, no ``gspawn``, and no server-wide lock held until the handler's
  first PDK call (kong-pdk's ``e_lock``), so an event that waits on Redis before its first
  call does not hold up the others. Kong runs events of many requests at once on one
  socket path (mp_rpc.lua ``Rpc:call`` connects per call from a keepalive pool).
* Each event runs in a fresh ``contextvars.Context``: nothing one event sets in a context
  variable is seen by the next on the same pooled greenlet.
* A terminal call (``kong.response.exit``/``error``) is sent and the event dropped at once:
  Kong answers the client and never sends the next ``Step`` (mp_rpc.lua ``bridge_loop``
  runs the PDK method, which ends the request). The handler goes on to its end and the
  greenlet back to the pool, where kong-pdk leaves it blocked on a Channel forever.
* A handler that raises is answered with an RPC error naming the exception type (Kong logs
  it and goes on without the plugin, mp_rpc.lua ``Rpc:handle_event``), where kong-pdk
  answers nothing and Kong waits for its socket timeout.
* The first answer on every connection is preceded by the ``serverPid`` notification
  (plugin.lua ``rpc_notifications:serverPid``), and instance ids start at a random base,
  never at 0: after a restart, an id a worker still holds names no instance of the new
  process, so Kong gets "no plugin instance" and starts its own again (mp_rpc.lua
  ``Rpc:handle_event``) instead of running another config's instance.
* Debug text is formatted only when debug logging is on.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet  # the class, not gevent's
from kong_pdk.exception import PDKException  # what plugins catch, as with kong-pdk

log = logging.getLogger("edge_plugins.pdk_bridge")

RET = "ret"  # kong_pdk/server.py MSG_RET; mp_rpc.lua bridge_loop ends on Data == "ret"
# mp_rpc.lua: these end the request on Kong's side; no Step follows (kong_pdk/server.py
# terminal_methods, kong_pdk/pdk/__init__.py non_return_methods).
TERMINAL_METHODS = frozenset({"kong.response.exit", "kong.response.error"})
# kong_pdk/module.py ``phases``: the order --dump lists them in.
PHASES = ("certificate", "rewrite", "log", "access", "preread", "response")
# Pooled greenlets kept idle; more run when that many events wait at once, then end.
MAX_IDLE_WORKERS = 256
_INSTANCE_ID_SPAN = 2**40  # a random base below 2**52: exact in Kong's Lua numbers


class PluginServerError(Exception):
    """An RPC request the server refuses (kong_pdk.exception.PluginServerException)."""


class HandlerFailed(Exception):
    """The plugin's phase handler raised: the event ends with an RPC error."""


def phases_of(plugin: type) -> list[str]:
    """The phases a plugin class implements, as kong-pdk's ``Module`` lists them."""
    return [phase for phase in PHASES if hasattr(plugin, phase)]


def plugin_info(
    name: str, plugin: type, version: str | None, priority: int, schema: Any
) -> dict[str, Any]:
    """One element of ``--dump`` (kong_pdk/server.py ``get_plugin_info``), which Kong reads
    with kong/runloop/plugin_servers/process.lua ``query_external_plugin_info``."""
    return {
        "Name": name,
        "Phases": phases_of(plugin),
        "Priority": priority,
        "Version": version,
        "Schema": {
            "name": name,
            "fields": [{"config": {"type": "record", "fields": schema}}],
        },
    }


def _clean_log_args(args: Sequence[Any]) -> list[Any]:
    """kong_pdk/pdk/__init__.py ``rpc_of``: arguments of ``kong.log*`` that are not exactly
    str, int, list or dict are sent as their ``str``."""
    return [a if type(a) in (str, int, list, dict) else str(a) for a in args]


class _Namespace:
    """A node of the ``kong`` object: any attribute is a deeper node, a call is the PDK
    method of that path (kong_pdk/pdk/__init__.py ``FakeClasses``). Nodes are cached on
    their parent, so ``kong.request.get_header`` costs two dict hits after the first use."""

    __slots__ = ("__dict__", "_call", "_path")

    def __init__(self, path: str, call: Callable[..., Any]) -> None:
        self._path = path
        self._call = call

    def __getattr__(self, name: str) -> _Namespace:
        if name.startswith("__"):
            raise AttributeError(name)
        child = _Namespace(f"{self._path}.{name}", self._call)
        self.__dict__[name] = child
        return child

    def __call__(self, *args: Any) -> Any:
        return self._call(self._path, args)

    def __str__(self) -> str:  # as FakeClasses: ``str(kong.x)`` calls ``kong.x()``
        return str(self._call(self._path, ()))

    def __repr__(self) -> str:
        return f"<PDK {self._path}>"


class _Event:
    __slots__ = ("caller", "ended", "id", "worker")

    def __init__(self, event_id: int) -> None:
        self.id = event_id
        self.caller: RawGreenlet | None = None  # the greenlet waiting for the next message
        self.worker: _Worker | None = None
        self.ended = False  # a terminal call was sent: no Step will come


class _Failure:
    """What a worker hands its caller when the handler raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Instance:
    __slots__ = ("config", "last_used_time", "name", "plugin", "start_time")

    def __init__(self, name: str, config: Any, plugin: Any) -> None:
        self.name = name
        self.config = config
        self.plugin = plugin
        self.start_time = time.time()
        self.last_used_time = 0.0


class _Worker:
    """A pooled greenlet running one event at a time, with its own ``kong`` tree."""

    __slots__ = ("bridge", "event", "greenlet", "kong")

    def __init__(self, bridge: PluginBridge) -> None:
        self.bridge = bridge
        self.event: _Event | None = None
        self.kong = _Namespace("kong", self._pdk_call)
        self.greenlet = RawGreenlet(self._run, parent=bridge.hub)

    def _pdk_call(self, method: str, args: tuple[Any, ...]) -> Any:
        """One PDK call of the running handler: hand it to the greenlet waiting on the
        event, wait for Kong's answer (kong_pdk/pdk/__init__.py ``rpc_of``)."""
        event = self.event
        if event is None or event.ended:
            raise PDKException(f"{method}: the request has already ended")
        if method == "kong.log" or method.startswith("kong.log."):
            call: dict[str, Any] = {"Method": method, "Args": _clean_log_args(args)}
        else:
            call = {"Method": method, "Args": args}
        caller = event.caller
        assert caller is not None
        if method in TERMINAL_METHODS:
            event.ended = True
            self.bridge.hub.loop.run_callback(caller.switch, call)
            return None
        data, error = caller.switch(call)
        if self.bridge.lua_style:
            return data, error
        if error:
            raise PDKException(f"exception from {method}: {error}")
        return data

    def _run(self, job: tuple[_Event, Callable[[Any], Any]]) -> None:
        bridge = self.bridge
        while True:
            event, handler = job
            self.event = event
            outcome: Any = RET
            try:
                contextvars.Context().run(handler, self.kong)
            except (SystemExit, KeyboardInterrupt):
                raise
            # A plugin's bug (or an unguarded edge_plugins.guard.RequestEnded, a
            # BaseException): an RPC error, not a dead worker or hub.
            except BaseException as exc:  # noqa: BLE001
                outcome = _Failure(exc)
            self.event = None
            caller = event.caller
            if len(bridge.idle) >= MAX_IDLE_WORKERS:
                if not event.ended and caller is not None:
                    bridge.hub.loop.run_callback(caller.switch, outcome)
                return  # the greenlet ends; its parent, the hub, goes on
            bridge.idle.append(self)
            if event.ended or caller is None:
                job = bridge.hub.switch()  # parked until a caller switches a job in
            else:
                job = caller.switch(outcome)


class PluginBridge:
    """Kong's ``plugin.*`` RPC methods for one plugin (kong_pdk/server.py ``PluginServer``
    with a dedicated plugin)."""

    def __init__(
        self,
        name: str,
        plugin: type,
        version: str | None = None,
        priority: int = 0,
        schema: Any = (),
        *,
        lua_style: bool = False,
        hub: Any = None,
    ) -> None:
        if hub is None:
            import gevent

            hub = gevent.get_hub()
        self.hub = hub
        self.name = name
        self.plugin = plugin
        self.version = version
        self.priority = priority
        self.schema = schema
        self.lua_style = lua_style
        self.instances: dict[int, _Instance] = {}
        self.next_instance_id = secrets.randbelow(_INSTANCE_ID_SPAN) + 1
        self.events: dict[int, _Event] = {}
        self.next_event_id = 0
        self.idle: list[_Worker] = []
        self.load_time = time.time()
        self.last_start_instance_time = 0.0
        self.last_close_instance_time = 0.0
        step = self.step
        self.methods: dict[str, Callable[..., Any]] = {
            "plugin.StartInstance": self.start_instance,
            "plugin.CloseInstance": self.close_instance,
            "plugin.InstanceStatus": self.instance_status,
            "plugin.GetStatus": self.get_status,
            "plugin.GetPluginInfo": self.get_plugin_info,
            "plugin.HandleEvent": self.handle_event,
            "plugin.StepError": self.step_error,
            # kong_pdk/server.py: every typed Step is a plain Step; mp_rpc.lua
            # get_step_method names them.
            **{
                f"plugin.{method}": step
                for method in (
                    "Step",
                    "StepMultiMap",
                    "StepCredential",
                    "StepConsumer",
                    "StepRoute",
                    "StepService",
                    "StepPlugin",
                    "StepMemoryStats",
                )
            },
        }

    # -- instances (kong_pdk/server.py start_instance, close_instance, instance_status) --

    def start_instance(self, cfg: dict[str, Any]) -> dict[str, Any]:
        name = cfg["Name"]
        if name != self.name:
            raise PluginServerError(f"{name} not initizlied")  # kong-pdk's text, sic
        config = json.loads(cfg["Config"])
        self.last_start_instance_time = time.time()
        instance = _Instance(name, config, self.plugin(config))
        iid = self.next_instance_id  # taken after the constructor: no yield in between
        self.next_instance_id = iid + 1
        self.instances[iid] = instance
        log.info("instance #%d of %s started", iid, name)
        return {"Name": name, "Id": iid, "Config": config, "StartTime": time.time()}

    def _instance(self, iid: Any) -> _Instance:
        instance = self.instances.get(iid)
        if instance is None:
            # mp_rpc.lua Rpc:handle_event matches "no plugin instance" (lower-cased).
            raise PluginServerError(f"no plugin instance #{iid}")
        return instance

    def instance_status(self, iid: Any) -> dict[str, Any]:
        ins = self._instance(iid)
        return {"Name": ins.name, "Id": iid, "Config": ins.config, "StartTime": ins.start_time}

    def close_instance(self, iid: Any) -> dict[str, Any]:
        ins = self._instance(iid)
        self.last_close_instance_time = time.time()
        del self.instances[iid]
        return {"Name": ins.name, "Id": iid, "Config": ins.config}

    def get_status(self, *_: Any) -> dict[str, Any]:
        return {
            "Pid": os.getpid(),
            "Plugins": {
                self.name: {
                    "Name": self.name,
                    "Modtime": self.load_time,
                    "LoadTime": self.load_time,
                    "Instances": [self.instance_status(iid) for iid in list(self.instances)],
                    "LastStartInstance": self.last_start_instance_time,
                    "LastCloseInstance": self.last_close_instance_time,
                }
            },
        }

    def get_plugin_info(self, name: str) -> dict[str, Any]:
        if name != self.name:
            raise PluginServerError(f"{name} not initizlied")
        return plugin_info(self.name, self.plugin, self.version, self.priority, self.schema)

    # -- events (kong_pdk/server.py handle_event, _step; mp_rpc.lua bridge_loop) --

    def handle_event(self, event: dict[str, Any]) -> dict[str, Any]:
        instance = self._instance(event["InstanceId"])
        instance.last_used_time = time.time()
        handler = getattr(instance.plugin, event["EventName"])
        eid = self.next_event_id
        self.next_event_id = eid + 1
        current = _Event(eid)
        worker = self.idle.pop() if self.idle else _Worker(self)
        current.worker = worker
        current.caller = getcurrent()
        return self._answer(current, worker.greenlet.switch((current, handler)))

    def _step(self, data: dict[str, Any], is_error: bool) -> dict[str, Any]:
        eid = data["EventId"]
        current = self.events.get(eid)
        if current is None or current.worker is None:
            raise PluginServerError(f"event id {eid} not found")
        value = data.get("Data")
        current.caller = getcurrent()
        reply = (None, value) if is_error else (value, None)
        return self._answer(current, current.worker.greenlet.switch(reply))

    def step(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._step(data, False)

    def step_error(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._step(data, True)

    def _answer(self, current: _Event, message: Any) -> dict[str, Any]:
        """What the handler sent (a PDK call, ``"ret"`` or a failure) as the answer."""
        eid = current.id
        current.caller = None
        if isinstance(message, _Failure):
            self.events.pop(eid, None)
            error = message.error
            log.error(
                "plugin %s failed in an event", self.name, exc_info=(type(error), error, None)
            )
            raise HandlerFailed(f"plugin handler failed: {type(error).__name__}")
        if message == RET or current.ended:
            self.events.pop(eid, None)
        else:
            self.events[eid] = current
        return {"Data": message, "EventId": eid}

    # -- the wire (kong_pdk/listener.py Server.handle) --

    def handle_connection(self, sock: Any, _address: Any = None) -> None:
        """Serve one connection from Kong until it closes."""
        unpacker = msgpack.Unpacker(
            _SocketReader(sock), strict_map_key=False, unicode_errors="surrogateescape"
        )
        packer = msgpack.Packer(unicode_errors="surrogateescape")
        pack = packer.pack
        # plugin.lua rpc_notifications:serverPid: lets Kong notice a restarted server.
        greeting = pack([2, "serverPid", os.getpid()])
        methods = self.methods
        debug = log.isEnabledFor(logging.DEBUG)
        send = _sender(sock)
        for _kind, msgid, method, args in unpacker:
            target = methods.get(method)
            try:
                if target is None:
                    namespace = method.split(".", 1)[0]
                    if namespace != "plugin":
                        raise PluginServerError(f"RPC for {namespace} is not supported")
                    raise PluginServerError(f"no method {method}")
                if debug:
                    log.debug("rpc: #%d method: %s args: %r", msgid, method, args)
                reply = pack([1, msgid, None, target(*args)])
            except (PluginServerError, HandlerFailed) as exc:
                log.warning("rpc: #%d error: %s", msgid, exc)
                reply = pack([1, msgid, str(exc), None])
            except Exception as exc:  # the connection's boundary: Kong gets the error text
                log.exception("rpc: #%d %s failed", msgid, method)
                reply = pack([1, msgid, str(exc), None])
            if greeting:
                reply, greeting = greeting + reply, b""
            send(reply)


def _sender(sock: Any) -> Callable[[bytes], None]:
    """``sock.sendall``, trying the raw non-blocking socket first: an answer is small and
    the kernel buffer almost always takes it whole, without gevent's wait machinery."""
    sendall: Callable[[bytes], None] = sock.sendall
    raw = getattr(sock, "_sock", None)
    if raw is None:
        return sendall

    def send(data: bytes) -> None:
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            sendall(data[sent:])

    return send


class _SocketReader:
    """What ``msgpack.Unpacker`` reads from: ``read(n)`` on a socket."""

    __slots__ = ("read",)

    def __init__(self, sock: Any) -> None:
        self.read = sock.recv


def serve(bridge: PluginBridge, socket_path: str, listen_queue_size: int = 4096) -> None:
    """Listen on ``socket_path`` and serve Kong until the process ends; exit when Kong does
    (kong_pdk/listener.py ``watchdog``: the parent gone, the process adopted by init)."""
    import gevent
    from gevent import socket
    from gevent.server import StreamServer

    if os.path.exists(socket_path):
        os.remove(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(listen_queue_size)
    log.info("plugin server %s listening on %s", bridge.name, socket_path)

    def watchdog() -> None:
        while os.getppid() != 1:
            gevent.sleep(1)
        log.info("Kong exits, terminating...")
        raise SystemExit(0)

    gevent.spawn(watchdog)
    StreamServer(listener, bridge.handle_connection).serve_forever()
