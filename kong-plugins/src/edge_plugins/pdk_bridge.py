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

* Kong's connections are read in the gevent hub's own callback, as soon as they are
  readable (``_Connection``): no greenlet per connection and no wait per read. An event
  runs in a pooled greenlet that the callback switches to directly; the greenlet writes
  its messages on the raw non-blocking socket and parks. No Channel, no ``gspawn``, and no
  server-wide lock held until the handler's first PDK call (kong-pdk's ``e_lock``), so an
  event that waits on Redis before its first call does not hold up the others. Kong runs
  events of many requests at once on one socket path (mp_rpc.lua ``Rpc:call`` connects per
  call from a keepalive pool), so an event's Step may come on another connection than its
  HandleEvent: each message answers the request it follows, wherever that came from.
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
* An event whose PDK call Kong never answers is ended, not parked forever: Kong calls the
  PDK method without ``pcall`` (mp_rpc.lua ``call_pdk_method``), so a Lua error there ends
  ``bridge_loop`` with no Step, and it gives up on an answer of ours after the cosocket's
  read timeout (OpenResty's ``lua_socket_read_timeout``, 60 s, which Kong's templates leave
  as it is). A sweep every ``STALLED_SWEEP_SECONDS`` raises ``PDKException`` in a handler
  still waiting on the call it waited on at the sweep before, so it unwinds and its
  greenlet goes back to the pool. kong-pdk keeps such a greenlet, blocked on a Channel.
* Debug text is formatted only when debug logging is on.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

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
_READ_SIZE = 65536  # what one callback reads: a header map of 1000 lines fits
ACCEPT_PAUSE = 0.1  # seconds without accepting after accept() failed (EMFILE)
_INSTANCE_ID_SPAN = 2**40  # a random base below 2**52: exact in Kong's Lua numbers
# How often waiting events are checked: one still waiting on the same PDK call at the next
# check (60 to 120 s after the call) is ended. Never before Kong's own 60 s read timeout.
STALLED_SWEEP_SECONDS = 60.0


class PluginServerError(Exception):
    """An RPC request the server refuses (kong_pdk.exception.PluginServerException)."""


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


class Answerer(Protocol):
    """Where answers to RPC requests go: one of Kong's connections (:class:`_Connection`)."""

    def answer(self, msgid: int, error: str | None, result: Any) -> None:
        """Send ``[1, msgid, error, result]``; raises ``OSError`` when Kong is gone."""


class _Event:
    __slots__ = ("awaiting", "calls", "conn", "ended", "id", "msgid", "worker")

    def __init__(self, event_id: int, worker: _Worker, conn: Answerer, msgid: int) -> None:
        self.id = event_id
        self.worker = worker
        # The request the event's next message answers: HandleEvent, then each Step, each
        # on whichever connection Kong took from its pool (mp_rpc.lua Rpc:call).
        self.conn: Answerer | None = conn
        self.msgid = msgid
        self.awaiting = False  # a PDK call went out: the next Step is its answer
        self.calls = 0  # PDK calls sent: tells a sweep whether it still waits on the same
        self.ended = False  # a terminal call was sent, or it was abandoned: no Step will come


class _Instance:
    __slots__ = ("config", "last_used_time", "name", "plugin", "start_time")

    def __init__(self, name: str, config: Any, plugin: Any) -> None:
        self.name = name
        self.config = config
        self.plugin = plugin
        self.start_time = time.time()
        self.last_used_time = 0.0


class _Worker:
    """A pooled greenlet running one event at a time, with its own ``kong`` tree.

    It sends the event's messages itself, on the connection of the request they answer,
    and then parks by switching back to the greenlet that last resumed it: the hub, in
    whose callback Kong's next message is read (tests drive it from their own greenlet).
    Whatever resumed it last (that callback, or gevent's when the handler waited on Redis),
    the next message finds it parked, not in the middle of a wait.
    """

    __slots__ = ("bridge", "event", "greenlet", "kong", "resumer")

    def __init__(self, bridge: PluginBridge) -> None:
        self.bridge = bridge
        self.event: _Event | None = None
        self.kong = _Namespace("kong", self._pdk_call)
        self.greenlet = RawGreenlet(self._run, parent=bridge.hub)
        self.resumer: Any = bridge.hub

    def resume(self, value: Any) -> None:
        """Run the worker with ``value`` until it parks or ends."""
        self.resumer = getcurrent()
        self.greenlet.switch(value)

    def abandon(self, error: BaseException) -> None:
        """Raise ``error`` at the PDK call the worker is parked on, and run it until it parks
        again: the handler unwinds, the greenlet goes back to the pool."""
        self.resumer = getcurrent()
        self.greenlet.throw(error)

    def _pdk_call(self, method: str, args: tuple[Any, ...]) -> Any:
        """One PDK call of the running handler: send it, wait for Kong's answer
        (kong_pdk/pdk/__init__.py ``rpc_of``)."""
        event = self.event
        if event is None or event.ended:
            raise PDKException(f"{method}: the request has already ended")
        if method == "kong.log" or method.startswith("kong.log."):
            call: dict[str, Any] = {"Method": method, "Args": _clean_log_args(args)}
        else:
            call = {"Method": method, "Args": args}
        if method in TERMINAL_METHODS:
            event.ended = True
            self.bridge.events.pop(event.id, None)
            self.bridge.send(event, call)
            return None
        event.awaiting = True
        event.calls += 1
        try:
            if not self.bridge.send(event, call):
                event.ended = True
                self.bridge.events.pop(event.id, None)
                raise PDKException(f"{method}: the connection to Kong is gone")
            data, error = self.resumer.switch()
        finally:
            event.awaiting = False
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
            failure: BaseException | None = None
            try:
                contextvars.Context().run(handler, self.kong)
            except (SystemExit, KeyboardInterrupt):
                raise
            # A plugin's bug (or an unguarded edge_plugins.guard.RequestEnded, a
            # BaseException): an RPC error, not a dead worker or hub.
            except BaseException as exc:  # noqa: BLE001
                failure = exc
            self.event = None
            bridge.events.pop(event.id, None)
            if not event.ended:
                bridge.finish(event, failure)
            if len(bridge.idle) >= MAX_IDLE_WORKERS:
                return  # the greenlet ends; its parent, the hub, goes on
            bridge.idle.append(self)
            job = self.resumer.switch()  # parked until an event is switched in


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
        # (event id, calls) of the events waiting on a PDK call at the last sweep.
        self.waiting_at_last_sweep: set[tuple[int, int]] = set()
        self.idle: list[_Worker] = []
        self.load_time = time.time()
        self.last_start_instance_time = 0.0
        self.last_close_instance_time = 0.0
        step = self.step
        # Answered by the event's worker, on the connection of the request (see _Worker).
        self.event_methods: dict[str, Callable[[Answerer, int, Any], None]] = {
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
        # Answered with what they return, in a greenlet of their own: a plugin's
        # constructor may wait (StartInstance), which the hub must not.
        self.methods: dict[str, Callable[..., Any]] = {
            "plugin.StartInstance": self.start_instance,
            "plugin.CloseInstance": self.close_instance,
            "plugin.InstanceStatus": self.instance_status,
            "plugin.GetStatus": self.get_status,
            "plugin.GetPluginInfo": self.get_plugin_info,
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

    def handle_event(self, conn: Answerer, msgid: int, event: dict[str, Any]) -> None:
        instance = self._instance(event["InstanceId"])
        instance.last_used_time = time.time()
        handler = getattr(instance.plugin, event["EventName"])
        eid = self.next_event_id
        self.next_event_id = eid + 1
        worker = self.idle.pop() if self.idle else _Worker(self)
        current = _Event(eid, worker, conn, msgid)
        self.events[eid] = current
        worker.resume((current, handler))

    def _step(self, conn: Answerer, msgid: int, data: dict[str, Any], is_error: bool) -> None:
        eid = data["EventId"]
        current = self.events.get(eid)
        if current is None or not current.awaiting:
            raise PluginServerError(f"event id {eid} not found")
        current.conn = conn
        current.msgid = msgid
        value = data.get("Data")
        current.worker.resume((None, value) if is_error else (value, None))

    def step(self, conn: Answerer, msgid: int, data: dict[str, Any]) -> None:
        self._step(conn, msgid, data, False)

    def step_error(self, conn: Answerer, msgid: int, data: dict[str, Any]) -> None:
        self._step(conn, msgid, data, True)

    def abandon_stalled(self) -> int:
        """End the events still waiting on the PDK call they were waiting on at the last
        call of this method (``serve`` calls it every ``STALLED_SWEEP_SECONDS``): Kong has
        given up on them (see the module doc). Answers how many were ended."""
        waiting = {(eid, event.calls) for eid, event in self.events.items() if event.awaiting}
        stalled = waiting & self.waiting_at_last_sweep
        self.waiting_at_last_sweep = waiting - stalled
        # Nothing else runs in the hub while this callback does: a handler that waits while
        # it unwinds switches back into this loop, and no Step can end these events meanwhile.
        for eid, _calls in stalled:
            event = self.events.pop(eid)
            event.ended = True
            event.conn = None
            log.warning(
                "plugin %s: event %d got no answer from Kong to its PDK call; ended", self.name, eid
            )
            event.worker.abandon(PDKException("no answer from Kong: the request is over"))
        return len(stalled)

    def send(self, event: _Event, message: Any) -> bool:
        """The event's next message (a PDK call or ``"ret"``) as the answer to the request
        it waits on; whether it reached Kong's socket."""
        conn = event.conn
        if conn is None:
            return False
        event.conn = None
        return _deliver(conn, event.msgid, None, {"Data": message, "EventId": event.id})

    def finish(self, event: _Event, failure: BaseException | None) -> None:
        """Answer the end of an event: ``"ret"``, or an RPC error when the handler raised
        (Kong logs it and goes on without the plugin, mp_rpc.lua ``Rpc:handle_event``)."""
        if failure is None:
            self.send(event, RET)
            return
        log.error(
            "plugin %s failed in an event", self.name, exc_info=(type(failure), failure, None)
        )
        conn, event.conn = event.conn, None
        if conn is None:
            return
        error = f"plugin handler failed: {type(failure).__name__}"
        log.warning("rpc: #%d error: %s", event.msgid, error)
        _deliver(conn, event.msgid, error, None)

    # -- requests (kong_pdk/listener.py Server.handle) --

    def dispatch(self, conn: Answerer, message: Any, debug: bool = False) -> None:
        """Serve one request ``[0, msgid, method, [args]]`` read from ``conn``."""
        _kind, msgid, method, args = message
        if debug:
            log.debug("rpc: #%d method: %s args: %r", msgid, method, args)
        event_method = self.event_methods.get(method)
        if event_method is not None:
            try:
                event_method(conn, msgid, *args)
            except Exception as exc:  # noqa: BLE001 - answered, as any request's failure
                self._answer_failure(conn, msgid, method, exc)
            return
        target = self.methods.get(method)
        if target is None:
            namespace = method.split(".", 1)[0]
            text = (
                f"RPC for {namespace} is not supported"
                if namespace != "plugin"
                else f"no method {method}"
            )
            self._answer_failure(conn, msgid, method, PluginServerError(text))
            return
        import gevent

        gevent.spawn(self._call, conn, msgid, method, target, args)

    def _call(
        self, conn: Answerer, msgid: int, method: str, target: Callable[..., Any], args: Any
    ) -> None:
        try:
            result = target(*args)
        except Exception as exc:  # noqa: BLE001 - answered, as any request's failure
            self._answer_failure(conn, msgid, method, exc)
            return
        _deliver(conn, msgid, None, result)

    def _answer_failure(self, conn: Answerer, msgid: int, method: str, exc: Exception) -> None:
        """Kong gets the error text (kong_pdk/listener.py); a refusal is a warning, anything
        else a bug logged with its traceback."""
        if isinstance(exc, PluginServerError):
            log.warning("rpc: #%d error: %s", msgid, exc)
        else:
            log.error("rpc: #%d %s failed", msgid, method, exc_info=exc)
        _deliver(conn, msgid, str(exc), None)


def _deliver(conn: Answerer, msgid: int, error: str | None, result: Any) -> bool:
    """``conn.answer``; whether it reached Kong's socket (a lost answer is logged: Kong
    dropped the connection, its request is over)."""
    try:
        conn.answer(msgid, error, result)
    except OSError as exc:
        log.warning("rpc: #%d answer lost, Kong's connection is gone: %s", msgid, exc)
        return False
    return True


class _Connection:
    """One of Kong's connections, read in the hub's own callback as soon as it is readable.

    No greenlet per connection and no wait per read: the callback reads what arrived and
    switches straight to the event's worker, which writes its answer on the raw
    non-blocking socket. A server that idles between requests pays each wake-up cold, so
    the shorter path matters most there (``make bench``: bridge rows).
    """

    __slots__ = ("bridge", "debug", "greeting", "pack", "sock", "unpacker", "watcher")

    def __init__(self, bridge: PluginBridge, sock: Any, loop: Any) -> None:
        self.bridge = bridge
        self.sock = sock
        sock.setblocking(False)
        self.unpacker = msgpack.Unpacker(strict_map_key=False, unicode_errors="surrogateescape")
        self.pack = msgpack.Packer(unicode_errors="surrogateescape").pack
        # plugin.lua rpc_notifications:serverPid: lets Kong notice a restarted server.
        self.greeting = self.pack([2, "serverPid", os.getpid()])
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.watcher = loop.io(sock.fileno(), 1)  # 1: readable
        self.watcher.start(self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.unpacker.feed(data)
        dispatch = self.bridge.dispatch
        try:
            for message in self.unpacker:
                dispatch(self, message, self.debug)
        except Exception:  # not Kong's protocol: drop the connection, as kong-pdk does
            log.exception("rpc: a message that is not a request; closing the connection")
            self.close()

    def answer(self, msgid: int, error: str | None, result: Any) -> None:
        data = self.pack([1, msgid, error, result])
        if self.greeting:
            data, self.greeting = self.greeting + data, b""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):  # the kernel's buffer is full: the rest when it drains
            import gevent

            gevent.spawn(self._send_rest, memoryview(data)[sent:])

    def _send_rest(self, data: memoryview) -> None:
        from gevent.socket import wait_write

        try:
            while data:
                wait_write(self.sock.fileno())
                try:
                    data = data[self.sock.send(data) :]
                except (BlockingIOError, InterruptedError):
                    continue
        except OSError as exc:
            log.warning("rpc: answer lost, Kong's connection is gone: %s", exc)
            self.close()

    def close(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is None:
            return
        watcher.stop()
        watcher.close()
        self.sock.close()


class _Listener:
    """Accepts Kong's connections in the hub's callback; when accepting fails (out of file
    descriptors), pauses ``ACCEPT_PAUSE`` seconds instead of spinning on a listener that
    stays readable, as gevent's StreamServer does."""

    def __init__(self, bridge: PluginBridge, sock: Any, loop: Any) -> None:
        self.bridge = bridge
        self.sock = sock
        self.loop = loop
        sock.setblocking(False)
        self.watcher = loop.io(sock.fileno(), 1)
        self.watcher.start(self._readable)
        self.pause = loop.timer(ACCEPT_PAUSE)

    def _readable(self) -> None:
        while True:
            try:
                conn, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("plugin server cannot accept Kong's connections: %s", exc)
                self.watcher.stop()
                self.loop.update_now()  # the pause counts from now, not the loop's cached time
                self.pause.start(self.watcher.start, self._readable)
                return
            # The standard library's accept() builds its socket from the module's global
            # name, which gevent's monkey patching replaced: take the descriptor back into
            # the listener's own class, so each read and write is one C call, not gevent's
            # wrapper around it.
            _Connection(self.bridge, type(self.sock)(fileno=conn.detach()), self.loop)

    def close(self) -> None:
        """Stop accepting; Kong's connections already accepted stay served."""
        self.watcher.stop()
        self.pause.stop()
        self.sock.close()


def serve(
    bridge: PluginBridge,
    socket_path: str,
    listen_queue_size: int = 4096,
    stalled_sweep_seconds: float = STALLED_SWEEP_SECONDS,
) -> None:
    """Listen on ``socket_path`` and serve Kong until the process ends; exit when Kong does
    (kong_pdk/listener.py ``watchdog``: the parent gone, the process adopted by init). Every
    ``stalled_sweep_seconds`` the events Kong gave up on are ended (``abandon_stalled``)."""
    import gevent
    from gevent.event import Event
    from gevent.monkey import get_original

    # The standard library's socket, not gevent's: the hub's callbacks read and write it
    # without waiting, and never through gevent's per-call wait machinery.
    socket_class = get_original("socket", "socket")
    if os.path.exists(socket_path):
        os.remove(socket_path)
    listener = socket_class(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(listen_queue_size)
    log.info("plugin server %s listening on %s", bridge.name, socket_path)

    def watchdog() -> None:
        while os.getppid() != 1:
            gevent.sleep(1)
        log.info("Kong exits, terminating...")
        raise SystemExit(0)

    watching = gevent.spawn(watchdog)
    # In the hub's callback, as Kong's messages are: the worker parks back into the hub.
    sweep = bridge.hub.loop.timer(stalled_sweep_seconds, stalled_sweep_seconds)
    sweep.start(bridge.abandon_stalled)
    listening = _Listener(bridge, listener, bridge.hub.loop)
    try:
        Event().wait()  # the hub serves; SystemExit from the watchdog ends the wait
    finally:  # or the caller's kill (tests serve in process): nothing stays on the hub
        sweep.stop()
        listening.close()
        watching.kill(block=False)
