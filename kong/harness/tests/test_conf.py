"""kong.conf handling (kong/conf_loader/init.lua, parse.lua) and the repository's own config."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from kong_harness.conf import KongConfError, load_kong_conf, parse_conf_text
from kong_harness.declarative import load_declarative
from tests.support.harness import BIN_DIR, DEMO_PLUGIN, load_repo_gateway

REPO = Path(__file__).resolve().parents[3]
SHIPPED = ("edge-trace", "edge-jwt", "edge-rate-limit")  # kong-plugins' plugin servers


def test_parse_comments_and_escapes() -> None:
    values = parse_conf_text("a = 1 # note\n# whole line\nb = x\\#y\n\nC = on\n")
    assert values == {"a": "1", "b": "x#y", "c": "on"}
    with pytest.raises(KongConfError, match="line 1"):
        parse_conf_text("no equals sign\n")


def test_pluginserver_defaults_and_env_override(tmp_path: Path) -> None:
    conf = tmp_path / "kong.conf"
    conf.write_text(
        "prefix = /p\npluginserver_names = my-plugin\n"
        "pluginserver_my_plugin_query_cmd = /bin/q --dump\n"
    )
    loaded = load_kong_conf(conf, env={"KONG_PLUGINSERVER_MY_PLUGIN_START_CMD": "/bin/s"})
    (server,) = loaded.pluginservers
    assert server.name == "my-plugin"
    assert server.socket == "/p/my-plugin.socket"  # Kong's default, not kong-pdk's .sock
    assert server.start_command == "/bin/s"
    conf.write_text("pluginserver_names = other\n")
    with pytest.raises(KongConfError, match="query_command undefined for pluginserver other"):
        load_kong_conf(conf, env={})


def test_local_paths_rebase_prefix_and_commands() -> None:
    conf = load_kong_conf(REPO / "kong/kong.conf", env={})
    local = conf.with_local_paths("/tmp/kp", "/opt/venv/bin")
    assert [s.name for s in local.pluginservers] == [s.name for s in conf.pluginservers]
    for original, server in zip(conf.pluginservers, local.pluginservers, strict=True):
        assert server.socket == f"/tmp/kp/{server.name}.socket"
        program = os.path.basename(shlex.split(original.start_command or "")[0])
        argv = shlex.split(server.start_command or "")
        assert argv[0] == f"/opt/venv/bin/{program}"
        assert argv[argv.index("-p") + 1] == "/tmp/kp"
        query_program = os.path.basename(shlex.split(original.query_command)[0])
        assert shlex.split(server.query_command)[0] == f"/opt/venv/bin/{query_program}"


def test_only_the_shipped_plugins_are_configured_and_packaged() -> None:
    """Test plugins (edge-demo, edge-subject, edge-phases) live in tests/support/plugins:
    neither kong/kong.conf nor the kong-plugins package carries them."""
    conf = load_kong_conf(REPO / "kong/kong.conf", env={})
    assert tuple(s.name for s in conf.pluginservers) == SHIPPED
    assert conf.values["plugins"].split(",") == ["bundled", *SHIPPED]
    project = tomllib.loads((REPO / "kong-plugins/pyproject.toml").read_text())
    # one console script per plugin server, plus the deployments' readiness check
    assert sorted(project["project"]["scripts"]) == sorted([*SHIPPED, "edge-plugins-ready"])
    assert importlib.util.find_spec("edge_plugins.demo") is None


def test_repository_kong_conf_follows_the_contract() -> None:
    """docs/writing-a-plugin.md, "Shipping it": explicit sockets, absolute commands, gevent +
    Python-style errors."""
    conf = load_kong_conf(REPO / "kong/kong.conf", env={})
    assert conf.pluginservers, "kong.conf names no plugin server"
    raw = conf.values
    for server in conf.pluginservers:
        key = "pluginserver_" + server.name.replace("-", "_")
        assert key + "_socket" in raw, f"{server.name}: set _socket explicitly"
        start = shlex.split(server.start_command or "")
        query = shlex.split(server.query_command)
        assert os.path.isabs(start[0]) and os.path.isabs(query[0])
        assert start[start.index("--socket-name") + 1] == os.path.basename(server.socket)
        assert "-g" in start and "--no-lua-style" in start
        assert query[-1] == "--dump"
        # A flag that chooses what --dump declares (edge-trace's --export-spans) is on the
        # start command too: Kong runs the phases the dump declared.
        assert set(query[1:-1]) <= set(start[1:]), f"{server.name}: {query[1:-1]} not started"


def test_dump_is_pure_json_with_one_plugin() -> None:
    """process.lua decodes the query command's whole stdout as JSON and takes element 0."""
    out = subprocess.run(
        [str(BIN_DIR / "python"), str(DEMO_PLUGIN), "--dump"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    (info,) = json.loads(out)
    assert info["Name"] == "edge-demo"
    assert info["Phases"] == ["log", "access"]
    assert info["Schema"]["fields"][0]["config"]["type"] == "record"


def test_edge_jwt_dump_is_pure_json_with_one_plugin() -> None:
    out = subprocess.run(
        [str(BIN_DIR / "edge-jwt"), "--dump"], capture_output=True, check=True, timeout=60
    ).stdout
    (info,) = json.loads(out)
    assert (info["Name"], info["Priority"], info["Phases"]) == ("edge-jwt", 1450, ["access"])
    assert info["Schema"]["fields"][0]["config"]["type"] == "record"


def test_repository_kong_yml_loads() -> None:
    config = load_declarative(REPO / "kong/kong.yml")
    routes = {r.name: r for r in config.routes}
    assert routes["auth-login"].paths == ("/api/auth/login",)
    assert "/api/auth/health" in routes["auth-public"].paths
    assert routes["auth-profile"].paths == ("/api/auth/profile",)
    assert "/api/auth/logout" in routes["auth-protected"].paths
    for route in routes.values():
        assert route.service is not None and route.service.port == 8080
    # Routing and plugin configs against the dumped schemas: tests/e2e/test_edge_jwt_config.py


def test_repository_gateway_serves_the_three_edge_plugins(tmp_path: Path) -> None:
    """docs/architecture.md: edge-trace before edge-jwt before edge-rate-limit, each its own
    server."""
    gateway = load_repo_gateway(tmp_path)
    priorities = {
        name: gateway.external[name].priority
        for name in ("edge-trace", "edge-jwt", "edge-rate-limit")
    }
    assert priorities == {"edge-trace": 100000, "edge-jwt": 1450, "edge-rate-limit": 910}
    names = [p.name for p in gateway.config.plugins] if gateway.config else []
    assert names.count("edge-trace") == 1, "one global edge-trace for every route"


def test_runner_writes_entries_sharing_a_socket_with_one_start_command() -> None:
    """Several ``pluginserver_*`` entries may name one socket, the start command on one of
    them (kong/conf_loader/init.lua: the others are "assuming external process
    management"); tests/bench/chain.py serves the chain from one process that way."""
    from tests.support.harness import HarnessRunner

    runner = HarnessRunner(
        '_format_version: "3.0"\n',
        servers={"demo-a": {}, "demo-b": {}},
        sockets={"demo-a": "shared.socket", "demo-b": "shared.socket"},
        external=("demo-b",),
    )
    servers = {s.name: s for s in runner.settings.kong_conf.pluginservers}
    assert servers["demo-a"].socket == servers["demo-b"].socket == f"{runner.dir}/shared.socket"
    assert servers["demo-b"].start_command is None
    assert servers["demo-a"].start_command is not None
    assert "--socket-name shared.socket" in servers["demo-a"].start_command
    assert servers["demo-b"].query_command.endswith("--dump")
