"""Running the harness for real: plugin server processes, uvicorn, a recording upstream.

Shared by the harness tests and ``make bench``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from kong_harness import pdk
from kong_harness.conf import load_kong_conf
from kong_harness.gateway import Gateway, GatewaySettings, serve
from kong_harness.kong_api import admin_app, status_app

BIN_DIR = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
# The test plugins (edge-demo, edge-subject, edge-phases), run by the venv's python.
# Absolute paths: Kong runs a start command as `/bin/sh -c "exec <cmd>"`, PATH unknown.
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"
DEMO_PLUGIN = TEST_PLUGINS / "demo.py"
DEMO_COMMAND = f"{shlex.quote(str(BIN_DIR / 'python'))} {shlex.quote(str(DEMO_PLUGIN))}"
# What kong/kong.conf gives every shipped server: gevent mode, Python-style PDK errors.
BASE_SERVER_FLAGS = "-g --no-lua-style"
# The start-command switch to kong-pdk's own bridge (edge_plugins.server); the tests run on
# it when EDGE_PLUGIN_BRIDGE=kong-pdk (make test-e2e-kong-pdk), on edge_plugins.pdk_bridge
# otherwise.
KONG_PDK_BRIDGE_FLAGS = f"{BASE_SERVER_FLAGS} --kong-pdk-bridge"
ON_KONG_PDK_BRIDGE = os.environ.get("EDGE_PLUGIN_BRIDGE", "") == "kong-pdk"
SERVER_FLAGS = KONG_PDK_BRIDGE_FLAGS if ON_KONG_PDK_BRIDGE else BASE_SERVER_FLAGS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Upstream:
    """A real HTTP upstream that records what reached it and echoes it back as JSON."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A test HTTP server on a free loopback port, serving from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_upstream() -> tuple[Upstream, ThreadingHTTPServer]:
    upstream = Upstream(port=0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            upstream.requests.append(record)
            if self.path.startswith("/slow"):
                import time

                time.sleep(2)
            payload = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Upstream", "echo")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = serve_in_thread(Handler)
    upstream.port = server.server_address[1]
    return upstream, server


def header(record: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


class HarnessRunner:
    """The harness gateway on a real port, in a background event loop thread."""

    def __init__(
        self,
        kong_yml: str,
        servers: dict[str, dict[str, str]] | None = None,
        workers: int = 2,
        plugin_timeout: float = 60.0,
        fail_open: bool = True,
        commands: dict[str, str] | None = None,
        status: bool = False,
        admin: bool = False,
        conf_lines: tuple[str, ...] = (),
        flags: dict[str, str] | None = None,
        sockets: dict[str, str] | None = None,
        external: tuple[str, ...] = (),
    ) -> None:
        """``servers`` maps each plugin server name to extra environment for its process;
        ``commands`` maps a server name to the command serving it: an absolute command
        line, or one relative to the venv's bin directory (a console script such as
        ``edge-jwt``, or ``python <script>``). The default is :data:`DEMO_COMMAND`, the test
        plugin ``edge-demo`` (which ``EDGE_DEMO_NAME`` can rename). ``status``/``admin``
        serve Kong's Status and Admin APIs on free ports (kong.conf ``status_listen``,
        ``admin_listen``; ``off`` otherwise); ``conf_lines`` are extra kong.conf lines.
        ``flags`` maps a server name to kong-pdk flags in place of :data:`SERVER_FLAGS` (a
        plain kong-pdk plugin in its default threads mode gets ``""``). ``sockets`` maps a
        server name to its socket's file name under the prefix (``<name>.socket`` otherwise:
        several entries may share one); the servers in ``external`` get no start command
        (kong/conf_loader/init.lua: "assuming external process management"), only their
        socket and query command."""
        self.dir = Path(tempfile.mkdtemp(prefix="kh-"))  # short: Unix socket paths ≤ 107
        servers = servers or {"edge-demo": {}}
        commands = commands or {}
        self.status_port = free_port() if status else None
        self.admin_port = free_port() if admin else None
        lines = [
            f"prefix = {self.dir}",
            "trusted_ips = 127.0.0.1/32",
            f"pluginserver_names = {','.join(servers)}",
            "status_listen = " + (f"127.0.0.1:{self.status_port}" if status else "off"),
            "admin_listen = " + (f"127.0.0.1:{self.admin_port}" if admin else "off"),
            *conf_lines,
        ]
        for name, env in servers.items():
            key = "pluginserver_" + name.replace("-", "_")
            # Kong gives a plugin server no environment but TZ; a test that needs a variable
            # names it in the command, as an operator would (kong/kong.conf says how).
            env_prefix = (
                "/usr/bin/env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " "
                if env
                else ""
            )
            command = commands.get(name, DEMO_COMMAND)
            absolute = Path(shlex.split(command)[0]).is_absolute()
            program = command if absolute else f"{BIN_DIR}/{command}"
            socket_name = (sockets or {}).get(name, f"{name}.socket")
            lines.append(f"{key}_socket = {self.dir}/{socket_name}")
            if name not in external:
                lines.append(
                    f"{key}_start_cmd = {env_prefix}{program} -p {self.dir} --socket-name "
                    f"{socket_name} {(flags or {}).get(name, SERVER_FLAGS)}".rstrip()
                )
            lines.append(f"{key}_query_cmd = {env_prefix}{program} --dump")
        (self.dir / "kong.conf").write_text("\n".join(lines) + "\n")
        (self.dir / "kong.yml").write_text(textwrap.dedent(kong_yml))
        self.settings = GatewaySettings(
            kong_conf=load_kong_conf(self.dir / "kong.conf", env={}),
            declarative_config=self.dir / "kong.yml",
            workers=workers,
            plugin_timeout=plugin_timeout,
            fail_open=fail_open,
        )
        self.gateway = Gateway(self.settings)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Future[None] | None = None
        self._own: list[asyncio.Future[None]] = []

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, wait_for_plugin_servers: bool = True) -> HarnessRunner:
        """Start the gateway; by default, like a deployment's readiness check, hold the
        first request back until every plugin server listens (Kong itself does not)."""
        self._thread.start()
        self.run(self.gateway.start())
        if wait_for_plugin_servers:
            self.run(self.gateway.plugin_servers_ready())
        ready = asyncio.Event()

        async def _serve() -> None:
            await serve(self.gateway, "127.0.0.1", self.port, ready, log_level="warning")

        self._server = asyncio.run_coroutine_threadsafe(_serve(), self.loop)
        self.run(asyncio.wait_for(ready.wait(), 20))
        for port, app in ((self.status_port, status_app), (self.admin_port, admin_app)):
            if port is not None:
                own_ready = asyncio.Event()
                self._own.append(
                    asyncio.run_coroutine_threadsafe(
                        serve(
                            app(self.gateway),
                            "127.0.0.1",
                            port,
                            own_ready,
                            log_level="warning",
                            stats=self.gateway.stats,
                        ),
                        self.loop,
                    )
                )
                self.run(asyncio.wait_for(own_ready.wait(), 20))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.cancel()
        for own in self._own:
            own.cancel()
        try:
            self.run(self.gateway.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def drain_logs(self) -> None:
        self.run(self.gateway.drain_logs())

    def __enter__(self) -> HarnessRunner:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def request_context(**overrides: Any) -> pdk.RequestContext:
    """A request as the PDK sees it in the access phase, for calling ``pdk.call`` directly:
    a client at 10.0.0.1 inside ``trusted_ips`` 10.0.0.0/8."""
    fields: dict[str, Any] = dict(
        method="GET",
        scheme="http",
        host="h",
        port=8000,
        raw_path="/p",
        raw_query="",
        http_version=1.1,
        headers=[],
        body=b"",
        peer_ip="10.0.0.1",
        remote_addr="10.0.0.1",
        request_id="0" * 32,
        start_time=1.5,
        node_id="n",
        trusted=pdk.trusted_ips_checker(["10.0.0.0/8"]),
        phase="access",
    )
    fields.update(overrides)
    return pdk.RequestContext(**fields)


# What kong/kong.conf adds to a shipped server's start and query commands.
SHIPPED_FLAGS = {"edge-trace": "--export-spans"}


def shipped_plugins_runner(kong_yml: str, names: tuple[str, ...], **kwargs: Any) -> HarnessRunner:
    """A runner serving the shipped plugins ``names`` by their console scripts, with no
    metrics listener (``--metrics-port 0``: parallel runners would fight over the port),
    and edge-trace exporting spans as kong/kong.conf starts it."""
    return HarnessRunner(
        kong_yml,
        servers={name: {} for name in names},
        commands={
            name: f"{name} --metrics-port 0 {SHIPPED_FLAGS.get(name, '')}".rstrip()
            for name in names
        },
        **kwargs,
    )


def load_repo_gateway(prefix: Path) -> Gateway:
    """kong/kong.conf + kong/kong.yml loaded as the harness (and Kong) would: every plugin
    server queried, every plugin config validated against its dumped schema and resolved
    (vault references read the current environment); no plugin server is started."""
    conf = load_kong_conf(REPO / "kong/kong.conf", env={}).with_local_paths(
        str(prefix), str(BIN_DIR)
    )
    gateway = Gateway(
        GatewaySettings(
            kong_conf=conf, declarative_config=REPO / "kong/kong.yml", start_plugin_servers=False
        )
    )

    async def load() -> None:
        await gateway.start()
        await gateway.stop()

    asyncio.run(load())
    return gateway


# What promtool's linter says of Kong 3.9.3's own names; anything else would be ours.
KONG_NAMING_LINT = {
    'kong_bandwidth_bytes counter metrics should have "_total" suffix',
    "kong_kong_latency_ms metric names should not contain abbreviated units",
    "kong_request_latency_ms metric names should not contain abbreviated units",
    "kong_upstream_latency_ms metric names should not contain abbreviated units",
    'kong_nginx_requests_total non-counter metrics should not have "_total" suffix',
    'kong_nginx_connections_total non-counter metrics should not have "_total" suffix',
}
