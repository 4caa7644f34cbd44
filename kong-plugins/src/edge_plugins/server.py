"""Start a plugin module as a *dedicated* plugin server.

Kong 3.9+ reads only the first plugin of a server's ``--dump``, so each plugin runs as its
own server (kong/runloop/plugin_servers/process.lua). The server is
:mod:`edge_plugins.pdk_bridge`: kong-pdk's plugin API and command line, Kong's protocol,
greenlets (one process serves concurrent requests that wait on Redis or a key fetch
without a thread each) at about half kong-pdk's CPU per event (``make bench``).
``--kong-pdk-bridge`` on the start command runs kong-pdk's own bridge instead, in its
gevent mode (``-g``), with the lossless strings below; either way PDK errors are
Python-style (``--no-lua-style``). Both flags are added when the command line lacks them,
so the start command in kong.conf cannot forget them. docs/plugin-runtime.md compares the
two.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from edge_plugins import logs, metrics_server

_FORCED_FLAGS = ("-g", "--no-lua-style")
METRICS_PORT_FLAG = "--metrics-port"
METRICS_ADDRESS_FLAG = "--metrics-address"
KONG_PDK_BRIDGE_FLAG = "--kong-pdk-bridge"


@dataclass(frozen=True, slots=True)
class OwnFlags:
    """This package's settings from a server's command line (see :func:`_take_own_flags`)."""

    metrics_port: int
    metrics_address: str
    kong_pdk_bridge: bool = False


def _is_query(argv: list[str]) -> bool:
    """``--dump``, ``--version`` or ``--help``: print and exit, serve nothing."""
    return any(a in ("--dump", "-dump", "--version", "-version", "-h", "--help") for a in argv[1:])


def _with_forced_flags(argv: list[str]) -> list[str]:
    """Add gevent mode and Python-style errors unless this is a ``--dump`` or ``--version``."""
    args = argv[1:]
    if _is_query(argv):
        return argv
    missing = [f for f in _FORCED_FLAGS if f not in args and not (f == "-g" and "--gevent" in args)]
    return [argv[0], *args, *missing]


def _ip_address(value: str) -> str:
    """An IP address literal: a host name would bind whatever it resolves to that day."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from None


def _take_own_flags(module: ModuleType, argv: list[str]) -> tuple[list[str], OwnFlags]:
    """Read and remove this package's own flags, which kong-pdk's parser would refuse.

    Settings reach a plugin server on its command line (``pluginserver_<name>_start_cmd``),
    never through the environment: Kong spawns the server from an nginx worker, which keeps
    only ``TZ`` (kong/runloop/plugin_servers/process.lua). ``--metrics-port PORT`` is where
    the process serves Prometheus metrics (the module's ``DEFAULT_METRICS_PORT`` when
    absent, ``0`` for none), on ``--metrics-address ADDRESS`` (an IP address, loopback when
    absent). ``--kong-pdk-bridge`` serves with kong-pdk's own bridge instead of
    :mod:`edge_plugins.pdk_bridge`. A bad value exits with argparse's usage error naming the
    flag (status 2, logged by Kong). Answers the remaining arguments and the flags.
    """
    parser = argparse.ArgumentParser(prog=argv[0], add_help=False)
    parser.add_argument(
        METRICS_PORT_FLAG, type=int, default=getattr(module, "DEFAULT_METRICS_PORT", 0)
    )
    parser.add_argument(
        METRICS_ADDRESS_FLAG, type=_ip_address, default=metrics_server.DEFAULT_ADDRESS
    )
    parser.add_argument(KONG_PDK_BRIDGE_FLAG, action="store_true")
    own, rest = parser.parse_known_args(argv[1:])
    return [argv[0], *rest], OwnFlags(own.metrics_port, own.metrics_address, own.kong_pdk_bridge)


_LOSSLESS_MSGPACK = "edge_plugins.server.lossless_msgpack"


def use_lossless_rpc_strings() -> None:
    """Make kong-pdk's RPC read and write any bytes Kong sends as a string, losslessly.

    Kong packs a header value's raw bytes as a MessagePack ``str``
    (kong/runloop/plugin_servers/rpc/mp_rpc.lua with lua-MessagePack: Lua strings are bytes,
    never checked for UTF-8). kong-pdk 0.36 reads with ``msgpack.Unpacker`` and writes with
    ``msgpack.packb`` (kong_pdk/listener.py), both strict: one ``X-Evil: \\xff`` kills the
    connection handler, Kong logs "no data" and proxies the request *without* the plugin.
    With ``unicode_errors="surrogateescape"`` such bytes arrive as lone surrogates
    (U+DC80-U+DCFF) and go back out as the same bytes. Only kong_pdk.listener gets these
    defaults, through its own namespace in place of the ``msgpack`` module (which stays
    strict for everyone else); listener.py calls nothing but ``Unpacker`` and ``packb``.
    Idempotent.
    """
    import functools

    import msgpack
    from kong_pdk import listener

    if getattr(listener.msgpack, "__name__", "") == _LOSSLESS_MSGPACK:
        return
    namespace = ModuleType(_LOSSLESS_MSGPACK)
    namespace.__dict__.update({k: v for k, v in vars(msgpack).items() if not k.startswith("__")})
    namespace.Unpacker = functools.partial(  # type: ignore[attr-defined]  # a ModuleType stand-in
        msgpack.Unpacker, unicode_errors="surrogateescape"
    )
    namespace.packb = functools.partial(  # type: ignore[attr-defined]  # a ModuleType stand-in
        msgpack.packb, unicode_errors="surrogateescape"
    )
    listener.msgpack = namespace


def serve(module: ModuleType, plugin: type | None = None) -> None:
    """Serve ``module`` (a plugin entry module) until Kong stops us.

    ``plugin`` is the class to serve in place of ``module.Plugin`` (a start-command choice
    of the module, such as the phases it declares). Gevent's monkey patching comes first so
    that socket, ssl and thread based libraries used by the core logic (httpx, redis)
    cooperate with the server's greenlets.
    """
    from gevent import monkey

    monkey.patch_all()

    # JSON lines on stderr (edge_plugins.logs): stdout of --dump must be pure JSON for
    # Kong's io.popen reader, and Kong writes both streams of a running server into its
    # own error log at INFO (kong/runloop/plugin_servers/process.lua).
    logs.configure(module.NAME, sys.stderr)
    argv, flags = _take_own_flags(module, sys.argv)
    sys.argv = _with_forced_flags(argv)
    if not _is_query(argv):
        metrics_server.serve_metrics(flags.metrics_port, flags.metrics_address)

    plugin = plugin or module.Plugin
    if flags.kong_pdk_bridge:
        use_lossless_rpc_strings()  # before kong-pdk reads its first message
        logs.route_kong_pdk_logger()  # one line shape on either bridge
        from kong_pdk.cli import start_dedicated_server

        start_dedicated_server(module.NAME, plugin, module.version, module.priority, module.Schema)
        return
    _serve_bridge(module, plugin)


def _serve_bridge(module: ModuleType, plugin: type) -> None:
    """kong_pdk/cli.py ``start_dedicated_server`` with :mod:`edge_plugins.pdk_bridge`: the
    same command line (kong-pdk's own parser), the same ``--dump``, the same socket name."""
    from kong_pdk.cli import parse
    from kong_pdk.listener import DEFAULT_SOCKET_NAME

    from edge_plugins import pdk_bridge

    args = parse(dedicated=True)
    if args.dump:
        info = pdk_bridge.plugin_info(
            module.NAME, plugin, module.version, module.priority, module.Schema
        )
        sys.stdout.write(json.dumps([info]))
        sys.exit(0)
    bridge = pdk_bridge.PluginBridge(
        module.NAME,
        plugin,
        module.version,
        module.priority,
        module.Schema,
        lua_style=not args.no_lua_style,
    )
    socket_name = args.socket_name
    if socket_name == DEFAULT_SOCKET_NAME:
        socket_name = f"{module.NAME}.sock"
    pdk_bridge.serve(bridge, os.path.join(args.prefix, socket_name), args.listen_queue_size)


def run_plugin(module: ModuleType, preload: Iterable[str] = (), plugin: type | None = None) -> None:
    """A plugin's console-script ``main``: preload its core, then :func:`serve` it.

    The modules in ``preload`` (the core: httpx, redis, cryptography, protobuf…) are
    imported at start rather than in the first request, after gevent's monkey patching as
    :func:`serve` would do it (``patch_all`` is idempotent); ``--dump`` skips both so the
    query command stays fast and its stdout pure JSON.
    """
    if not any(arg in ("--dump", "-dump") for arg in sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
        for name in preload:
            importlib.import_module(name)
    serve(module, plugin)
