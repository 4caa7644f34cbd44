"""Plugin servers started the way Kong starts them: no environment but ``TZ``.

Kong's worker 0 spawns each server (kong/runloop/plugin_servers/process.lua
``pluginserver_timer``: ``ngx_pipe.spawn("exec " .. start_command)``) from an nginx worker,
whose environment nginx rebuilds from ``TZ`` and the ``env`` directives alone — Kong's
kong/templates/nginx.lua writes none. So every setting a server needs is on its command line
in kong.conf; variables an operator exports reach Kong, not the plugin servers.

kong.conf is the Kong image's: metrics on 0.0.0.0 for a Prometheus in another container.
``make run`` overrides the start commands with ``KONG_PLUGINSERVER_<NAME>_START_CMD``
(Kong's own ``KONG_*`` overrides, kong/conf_loader/init.lua) from scripts/local-kong-env, so
that locally they listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from kong_harness.conf import load_kong_conf
from kong_harness.plugin_servers import PluginServerProcess, worker_environment
from tests.support.harness import BIN_DIR, REPO, free_port

SHIPPED = {
    "edge-trace": "edge_trace_",
    "edge-jwt": "edge_jwt_",
    "edge-rate-limit": "edge_rate_limit_",
}


def test_a_worker_keeps_only_tz() -> None:
    environ = {
        "TZ": "Europe/Paris",
        "PATH": "/usr/bin",
        "EDGE_JWT_METRICS_PORT": "1",
        "EDGE_JWT_SIGNING_KEY_FILE": "/k.pem",
    }
    assert worker_environment(environ) == {"TZ": "Europe/Paris"}
    assert worker_environment({"PATH": "/usr/bin"}) == {}


def make_run_kong_env() -> dict[str, str]:
    """The ``KONG_*`` variables scripts/run-local exports, from the file it sources."""
    run_local = (REPO / "scripts/run-local").read_text()
    assert re.search(r"^\. scripts/local-kong-env$", run_local, re.M), "make run sources it"
    listing = subprocess.run(
        ["bash", "-c", "set -euo pipefail; . scripts/local-kong-env; env -0"],
        cwd=REPO,
        env={"PATH": os.environ["PATH"]},
        check=True,
        capture_output=True,
    ).stdout.decode()
    pairs = (entry.partition("=") for entry in listing.split("\0") if entry)
    return {key: value for key, _, value in pairs if key.startswith("KONG_")}


def listening_addresses(port: int) -> set[str]:
    """The addresses TCP sockets listen on at ``port``, from /proc/net/tcp and tcp6 (the
    kernel's table: the address a socket is bound to, whatever answers a connect)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: TCP_LISTEN
                continue
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words)))
    return found


@pytest.mark.parametrize(
    ("run", "kong_env", "bound"),
    [
        ("kong-image", {}, {"0.0.0.0"}),
        ("make-run", None, {"127.0.0.1"}),
    ],
)
@pytest.mark.parametrize("name", sorted(SHIPPED))
async def test_each_shipped_server_takes_its_settings_from_kong_conf(
    name: str,
    run: str,
    kong_env: Mapping[str, str] | None,
    bound: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The repository's start command, as Kong runs it: its ``--metrics-port`` is where the
    metrics are, its ``--metrics-address`` the only address they listen on (the image's
    kong.conf, or make run's overrides of it), and a port exported in Kong's environment
    is ignored."""
    decoy = free_port()
    env_name = name.upper().replace("-", "_") + "_METRICS_PORT"
    monkeypatch.setenv(env_name, str(decoy))
    monkeypatch.setenv("TZ", "UTC")
    prefix = tempfile.mkdtemp(prefix="kenv-")  # short: Unix socket paths ≤ 107 bytes
    env = make_run_kong_env() if kong_env is None else kong_env
    conf = load_kong_conf(REPO / "kong/kong.conf", env=env).with_local_paths(prefix, str(BIN_DIR))
    (server,) = [s for s in conf.pluginservers if s.name == name]
    assert server.start_command is not None
    port = free_port()
    command, count = re.subn(r"--metrics-port \d+", f"--metrics-port {port}", server.start_command)
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
            assert listening_addresses(port) == bound, run
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{decoy}/metrics")
    finally:
        await process.stop()


async def test_an_assignment_before_the_command_is_command_not_found(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``exec VAR=x cmd``: the shell looks for a program named ``VAR=x`` and exits 127;
    Kong logs "command not found" and does not respawn (process.lua)."""
    caplog.set_level(logging.INFO, logger="kong_harness.plugin_servers")
    prefix = tempfile.mkdtemp(prefix="kenv-")
    conf = load_kong_conf(REPO / "kong/kong.conf", env={}).with_local_paths(prefix, str(BIN_DIR))
    server = conf.pluginservers[0]
    process = PluginServerProcess(
        dataclasses.replace(
            server, start_command=f"EDGE_TRACE_METRICS_PORT=0 {server.start_command}"
        )
    )
    await process.start()
    assert process._task is not None
    await asyncio.wait_for(process._task, 10)
    assert caplog.text.count("starting pluginserver process for") == 1
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
