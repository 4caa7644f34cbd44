"""Plugin servers started the way Kong starts them: no environment but ``TZ``.

Kong's worker 0 spawns each server (kong/runloop/plugin_servers/process.lua
``pluginserver_timer``: ``ngx_pipe.spawn("exec " .. start_command)``) from an nginx worker,
whose environment nginx rebuilds from ``TZ`` and the ``env`` directives alone — Kong's
kong/templates/nginx.lua writes none. So every setting a server needs is on its command line
in kong.conf; variables an operator exports reach Kong, not the plugin servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tempfile
from pathlib import Path

import httpx
import pytest

from kong_harness.conf import load_kong_conf
from kong_harness.plugin_servers import PluginServerProcess, worker_environment
from tests.harness.support import BIN_DIR, REPO, free_port

SHIPPED = {"edge-trace": "edge_trace_", "edge-jwt": "edge_jwt_",
           "edge-rate-limit": "edge_rate_limit_"}


def test_a_worker_keeps_only_tz() -> None:
    environ = {"TZ": "Europe/Paris", "PATH": "/usr/bin", "EDGE_JWT_METRICS_PORT": "1",
               "EDGE_JWT_SIGNING_KEY_FILE": "/k.pem"}
    assert worker_environment(environ) == {"TZ": "Europe/Paris"}
    assert worker_environment({"PATH": "/usr/bin"}) == {}


@pytest.mark.parametrize("name", sorted(SHIPPED))
async def test_each_shipped_server_takes_its_settings_from_kong_conf(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's start command, as Kong runs it: its ``--metrics-port`` is where the
    metrics are, and a port exported in Kong's environment is ignored."""
    decoy = free_port()
    env_name = name.upper().replace("-", "_") + "_METRICS_PORT"
    monkeypatch.setenv(env_name, str(decoy))
    monkeypatch.setenv("TZ", "UTC")
    prefix = tempfile.mkdtemp(prefix="kenv-")  # short: Unix socket paths ≤ 107 bytes
    conf = load_kong_conf(REPO / "kong/kong.conf", env={}).with_local_paths(prefix,
                                                                           str(BIN_DIR))
    (server,) = [s for s in conf.pluginservers if s.name == name]
    assert server.start_command is not None
    port = free_port()
    command, count = re.subn(r"--metrics-port \d+", f"--metrics-port {port}",
                             server.start_command)
    assert count == 1, f"{name}: kong.conf must give the metrics port on the command line"
    process = PluginServerProcess(dataclasses.replace(server, start_command=command))
    await process.start()
    try:
        await process.wait_ready()
        assert process.pid is not None
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        names = {e.partition(b"=")[0] for e in environ.split(b"\0") if e}
        assert names <= {b"TZ", b"PWD"} and b"TZ=UTC" in environ  # /bin/sh adds PWD
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            metrics = await _get_when_up(client, f"http://127.0.0.1:{port}/metrics")
            assert f"# HELP {SHIPPED[name]}" in metrics
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{decoy}/metrics")
    finally:
        await process.stop()


async def test_an_assignment_before_the_command_is_command_not_found(
        caplog: pytest.LogCaptureFixture) -> None:
    """``exec VAR=x cmd``: the shell looks for a program named ``VAR=x`` and exits 127;
    Kong logs "command not found" and does not respawn (process.lua)."""
    prefix = tempfile.mkdtemp(prefix="kenv-")
    conf = load_kong_conf(REPO / "kong/kong.conf", env={}).with_local_paths(prefix,
                                                                           str(BIN_DIR))
    server = conf.pluginservers[0]
    process = PluginServerProcess(dataclasses.replace(
        server, start_command=f"EDGE_TRACE_METRICS_PORT=0 {server.start_command}"))
    await process.start()
    assert process._task is not None
    await asyncio.wait_for(process._task, 10)
    assert process.spawn_count == 1
    assert 'exited with "command not found"' in caplog.text


async def _get_when_up(client: httpx.AsyncClient, url: str) -> str:
    """The metrics listener starts with the server; give it a moment after the socket."""
    for _ in range(50):
        try:
            response = await client.get(url)
        except httpx.ConnectError:
            await asyncio.sleep(0.1)
            continue
        assert response.status_code == 200
        return response.text
    raise AssertionError(f"nothing serves {url}")
