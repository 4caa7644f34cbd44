"""End-to-end behaviour of the harness: real plugin server processes, real HTTP.

Each test names the Kong source file whose behaviour it pins.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from kong_harness.gateway import GatewayConfigError
from tests.support.harness import DEMO_COMMAND, HarnessRunner, header


def _yml(
    upstream_port: int, plugins: str = "", extra_routes: str = "", service_opts: str = ""
) -> str:
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}/svc
        {service_opts}
        routes:
          - name: r-demo
            paths: [/demo]
          - name: r-plain
            paths: [/plain]
{extra_routes}
{plugins}
    """


def _route_plugin(route: str, config: str = "{}", name: str = "edge-demo") -> str:
    return f"""
    plugins:
      - name: {name}
        route: {route}
        config: {config}
    """


@pytest.fixture(scope="module")
def demo_gateway(upstream):  # type: ignore[no-untyped-def]
    """One gateway for the read-only tests: demo plugin on /demo, nothing on /plain."""
    yml = (
        _yml(
            upstream.port,
            plugins=_route_plugin("r-demo"),
            extra_routes="""
          - name: r-echo
            paths: [/echo]
          - name: r-log
            paths: [/log]
          - name: r-exit
            paths: [/exit]
    """,
        )
        + """
      - name: edge-demo
        route: r-echo
        config: {mode: echo}
      - name: edge-demo
        route: r-log
        config: {log_serialize: true, mode: noop}
      - name: edge-demo
        route: r-exit
        config: {exit_status: 418, greeting: "no tea/here"}
    """
    )
    with HarnessRunner(yml) as runner:
        yield runner


def test_demo_header_reaches_client_and_upstream(demo_gateway, upstream):  # type: ignore[no-untyped-def]
    """kong.service.request.set_header edits the proxied request; kong.response.set_header in
    access stays on the proxied response (kong/pdk/service/request.lua, kong/pdk/response.lua).
    Defaults from the schema reach the instance (header name, greeting)."""
    with demo_gateway.client() as client:
        response = client.get("/demo/x?a=1")
    assert response.status_code == 200
    assert response.headers["x-edge-demo"] == "hello"
    assert header(upstream.last, "X-Edge-Demo") == ["hello"]
    # strip_path (default true) removes /demo; the service path /svc is prepended.
    assert upstream.last["path"] == "/svc/x?a=1"


def test_kong_headers_on_proxied_response(demo_gateway, upstream):  # type: ignore[no-untyped-def]
    """kong/runloop/handler.lua header_filter.after: Via, latencies, request id; the same
    request id goes upstream (headers_upstream) with X-Forwarded-* and Via."""
    with demo_gateway.client() as client:
        response = client.get("/plain/p", headers={"X-Forwarded-For": "10.9.8.7"})
    assert response.status_code == 200
    rid = response.headers["x-kong-request-id"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert response.headers["via"] == "1.1 kong/3.9.3"
    assert int(response.headers["x-kong-upstream-latency"]) >= 0
    assert int(response.headers["x-kong-proxy-latency"]) >= 0
    assert response.headers["x-upstream"] == "echo"
    rec = upstream.last
    assert header(rec, "X-Kong-Request-Id") == [rid]
    assert header(rec, "Via") == ["1.1 kong/3.9.3"]
    assert header(rec, "X-Forwarded-For") == ["10.9.8.7, 127.0.0.1"]
    assert header(rec, "X-Forwarded-Prefix") == ["/plain"]
    assert header(rec, "Host") == [f"127.0.0.1:{upstream.port}"]
    assert "x-edge-demo" not in response.headers


def test_unknown_path_is_kongs_404(demo_gateway):  # type: ignore[no-untyped-def]
    """kong/runloop/handler.lua: kong.response.error(404, "no Route matched with those
    values"), body from kong/tools/http.lua's JSON template carrying the request id."""
    with demo_gateway.client() as client:
        response = client.get("/nowhere")
        plain = client.get("/nowhere", headers={"Accept": "text/plain"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body == {
        "message": "no Route matched with those values",
        "request_id": response.headers["x-kong-request-id"],
    }
    assert response.headers["server"] == "kong/3.9.3"
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    assert plain.text.startswith("no Route matched with those values\nrequest_id: ")


def test_exit_is_terminal_and_json_encoded(demo_gateway, upstream):  # type: ignore[no-untyped-def]
    """kong.response.exit with a table body: cjson-encoded, Content-Type JSON, headers from
    the call; the upstream is never reached (kong/pdk/response.lua send)."""
    before = len(upstream.requests)
    with demo_gateway.client() as client:
        response = client.get("/exit")
    assert response.status_code == 418
    assert response.json() == {"message": "no tea/here"}
    assert b"no tea\\/here" in response.content  # lua-cjson escapes '/'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["x-edge-demo"] == "exit"
    assert "x-kong-response-latency" in response.headers
    assert len(upstream.requests) == before


def test_multimap_and_binary_shaping(demo_gateway):  # type: ignore[no-untyped-def]
    """mp_rpc.lua fix_mmap / fix_raw: header and query multimaps have lower-case keys and
    list values (a flag argument is an empty list); the raw body arrives as bytes."""
    with demo_gateway.client() as client:
        response = client.post(
            "/echo?a=1&a=2&flag&e=",
            headers=[("X-Multi", "one"), ("X-Multi", "two"), ("X-Single", "v")],
            content=b"\x00\xffraw",
        )
    assert response.status_code == 200
    report = response.json()
    assert report["headers"]["x-multi"] == ["one", "two"]
    assert report["headers"]["x-single"] == ["v"]
    assert report["query"] == {"a": ["1", "2"], "flag": [], "e": [""]}
    assert report["raw_body"] == "\x00\xffraw"
    assert report["method"] == "POST"
    assert report["raw_query"] == "a=1&a=2&flag&e="
    assert report["path"] == "/echo"
    assert report["shared"] is None


def test_log_phase_gets_a_snapshot(demo_gateway, caplog):  # type: ignore[no-untyped-def]
    """plugin.lua: the log phase runs in a timer after the response, with
    kong.log.serialize() saved at that time (Authorization redacted, kong/pdk/log.lua)."""
    caplog.set_level(logging.INFO, logger="kong_harness.plugin.edge-demo")
    with demo_gateway.client() as client:
        response = client.get("/log/z?q=1", headers={"Authorization": "Bearer secret"})
    assert response.status_code == 200
    demo_gateway.drain_logs()
    lines = [r.getMessage() for r in caplog.records if "serialized " in r.getMessage()]
    assert lines, "the log phase did not run"
    entry = json.loads(lines[-1].split("serialized ", 1)[1])
    assert entry["request"]["headers"]["authorization"] == "REDACTED"
    assert entry["request"]["id"] == response.headers["x-kong-request-id"]
    assert entry["request"]["method"] == "GET"
    assert entry["request"]["querystring"] == {"q": "1"}
    assert entry["response"]["status"] == 200
    assert entry["route"]["name"] == "r-log"
    assert entry["service"]["name"] == "echo"
    assert entry["upstream_uri"] == "/svc/z?q=1"
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["source"] == "service"
    assert set(entry["latencies"]) == {"kong", "proxy", "request", "receive"}


def test_invalid_plugin_config_refuses_to_start(upstream):  # type: ignore[no-untyped-def]
    """kong/db/schema/init.lua: a config violating the plugin's schema is rejected at load."""
    runner = HarnessRunner(_yml(upstream.port, plugins=_route_plugin("r-demo", "{mode: bogus}")))
    try:
        with pytest.raises(GatewayConfigError, match="expected one of: noop, headers, echo"):
            runner.start()
    finally:
        runner.stop()


def test_unknown_plugin_refuses_to_start(upstream):  # type: ignore[no-untyped-def]
    """kong/db/schema/plugin_loader.lua: a plugin not served by any server is not enabled."""
    runner = HarnessRunner(_yml(upstream.port, plugins=_route_plugin("r-demo", name="nope")))
    try:
        with pytest.raises(GatewayConfigError, match="plugin 'nope' not enabled"):
            runner.start()
    finally:
        runner.stop()


def test_priority_order_and_exit_stops_later_plugins(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """kong/db/dao/plugins.lua sort_by_handler_priority: higher priority runs first, so the
    lower-priority plugin's set_header wins; kong/init.lua: once a plugin exits, the
    collecting iterator skips the rest of the access phase."""
    servers = {
        "edge-demo": {},
        "edge-early": {"EDGE_DEMO_NAME": "edge-early", "EDGE_DEMO_PRIORITY": "2000"},
    }
    yml = (
        _yml(
            upstream.port,
            extra_routes="""
          - name: r-stop
            paths: [/stop]
    """,
        )
        + """
    plugins:
      - name: edge-early
        route: r-demo
        config: {greeting: early}
      - name: edge-demo
        route: r-demo
        config: {greeting: late}
      - name: edge-early
        route: r-stop
        config: {greeting: early, exit_status: 403}
      - name: edge-demo
        route: r-stop
        config: {greeting: late, header_name: X-Late}
    """
    )
    gw = harness_factory(yml, servers=servers)
    with gw.client() as client:
        ordered = client.get("/demo")
        before = len(upstream.requests)
        stopped = client.get("/stop")
    assert header(upstream.requests[-1], "X-Edge-Demo") == ["late"]
    assert ordered.headers["x-edge-demo"] == "late"
    assert stopped.status_code == 403
    assert "x-late" not in stopped.headers
    assert len(upstream.requests) == before


def test_upstream_failures(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """kong/error_handlers.lua: 502 when the upstream refuses, 504 when it times out."""
    from tests.support.harness import free_port

    dead = free_port()
    yml = f"""
    _format_version: "3.0"
    services:
      - name: dead
        url: http://127.0.0.1:{dead}
        routes: [{{name: r-dead, paths: [/dead]}}]
      - name: slow
        url: http://127.0.0.1:{upstream.port}
        read_timeout: 300
        routes: [{{name: r-slow, paths: [/slow], strip_path: false}}]
    """
    gw = harness_factory(yml)
    with gw.client() as client:
        refused = client.get("/dead")
        slow = client.get("/slow")
    assert refused.status_code == 502
    assert refused.json()["message"] == "An invalid response was received from the upstream server"
    assert slow.status_code == 504
    assert slow.json()["message"] == "The upstream server is timing out"


def test_start_instance_failure_is_500(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """plugin.lua get_instance_id: a failed StartInstance throws, and kong/init.lua turns a
    throwing access handler into 500 "An unexpected error occurred"."""
    gw = harness_factory(
        _yml(upstream.port, plugins=_route_plugin("r-demo", "{fail: start_instance}"))
    )
    with gw.client() as client:
        response = client.get("/demo")
        healthy = client.get("/plain")
    assert response.status_code == 500
    assert response.json()["message"] == "An unexpected error occurred"
    assert healthy.status_code == 200


def test_fail_open_when_server_is_down(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """mp_rpc.lua Rpc:handle_event: once a worker has an instance, a connection error is
    logged and the request goes on without the plugin — Kong fails open. (A worker that has
    no instance yet fails StartInstance instead, which plugin.lua turns into a 500.)"""
    gw = harness_factory(_yml(upstream.port, plugins=_route_plugin("r-demo")), workers=1)
    with gw.client() as client:
        assert client.get("/demo").headers.get("x-edge-demo") == "hello"
        gw.run(gw.gateway.processes["edge-demo"].stop())
        response = client.get("/demo")
    assert response.status_code == 200
    assert "x-edge-demo" not in response.headers
    assert header(upstream.last, "X-Edge-Demo") == []


def test_killed_server_is_respawned_and_instances_restart(harness_factory, upstream, caplog):  # type: ignore[no-untyped-def]
    """process.lua respawns a dead server (at most once a second); mp_rpc.lua sees "no
    plugin instance" from the new process, resets its instances and starts them again."""
    caplog.set_level(logging.INFO, logger="kong_harness.plugin_servers")
    gw = harness_factory(_yml(upstream.port, plugins=_route_plugin("r-demo")), workers=1)
    process = gw.gateway.processes["edge-demo"]
    with gw.client() as client:
        assert client.get("/demo").headers.get("x-edge-demo") == "hello"
        _kill_and_await_respawn(gw, process)
        assert _starts_logged(caplog, "edge-demo") == 2
        response = client.get("/demo")
    assert response.headers.get("x-edge-demo") == "hello"


def test_fail_open_when_server_hangs(harness_factory, upstream, caplog):  # type: ignore[no-untyped-def]
    """A handler that never makes its first PDK call hangs kong-pdk's whole server (its
    e_lock); Kong's socket timeout fires and the request goes on without the plugin."""
    caplog.set_level(logging.ERROR, logger="kong_harness.plugin_servers")
    yml = _yml(upstream.port, plugins=_route_plugin("r-demo", "{fail: hang_before_pdk}"))
    gw = harness_factory(yml, plugin_timeout=1.0)
    with gw.client() as client:
        response = client.get("/demo")
    assert response.status_code == 200
    assert "x-edge-demo" not in response.headers
    # It was the socket timeout that ended the call (mp_rpc.lua logs the error and goes on),
    # not a connection error: asserted on what was logged, not on how long it took.
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "[edge-demo] timeout" in errors, errors


def test_each_worker_starts_its_own_instance(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """plugin.lua keeps running_instances per worker: two workers, two instances."""
    from kong_harness.rpc import MsgpackRpcClient

    gw = harness_factory(_yml(upstream.port, plugins=_route_plugin("r-demo")), workers=2)
    with gw.client() as client:
        for _ in range(4):
            assert client.get("/demo").status_code == 200
    socket_path = gw.settings.kong_conf.pluginservers[0].socket

    async def status() -> dict:
        rpc = MsgpackRpcClient(socket_path, timeout=5)
        try:
            return await rpc.call("plugin.GetStatus")
        finally:
            await rpc.aclose()

    instances = gw.run(status())["Plugins"]["edge-demo"]["Instances"]
    assert len(instances) == 2


def test_kong_serves_before_a_plugin_server_listens(upstream):  # type: ignore[no-untyped-def]
    """Kong starts plugin servers from a timer (kong/runloop/plugin_servers/process.lua) and
    serves without waiting for their sockets: until one listens, StartInstance cannot
    connect, plugin.lua get_instance_id throws and the request is Kong's 500. A readiness
    check on the sockets (Gateway.plugin_servers_ready) is what holds traffic back."""
    slow = f"/bin/sh -c 'sleep 2; exec {DEMO_COMMAND} \"$@\"' late"
    runner = HarnessRunner(
        _yml(upstream.port, plugins=_route_plugin("r-demo")),
        commands={"edge-demo": slow},
        workers=1,
    )
    runner.start(wait_for_plugin_servers=False)
    try:
        with runner.client() as client:
            early = client.get("/demo")
            runner.run(runner.gateway.plugin_servers_ready())
            ready = client.get("/demo")
    finally:
        runner.stop()
    assert early.status_code == 500
    assert early.json()["message"] == "An unexpected error occurred"
    assert ready.status_code == 200 and ready.headers["x-edge-demo"] == "hello"


def test_a_restarted_server_resets_the_instances_of_every_worker(  # type: ignore[no-untyped-def]
    harness_factory, upstream, caplog
):
    """plugin.lua reset_instance: the first worker to hear "no plugin instance" from a
    restarted server forgets its instances and posts the "plugin_server"/"reset_instances"
    worker event (handled in plugin_servers/init.lua), so the other workers start fresh
    instances without another failed round trip."""
    gw = harness_factory(_yml(upstream.port, plugins=_route_plugin("r-demo")), workers=2)
    process = gw.gateway.processes["edge-demo"]
    with gw.client() as client:
        for _ in range(2):  # one request per worker: both hold an instance
            assert client.get("/demo").status_code == 200
        assert all(w.plugins["edge-demo"].instances for w in gw.gateway.workers)
        _kill_and_await_respawn(gw, process)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kong_harness.plugin_servers"):
            answers = [client.get("/demo") for _ in range(2)]
    assert [a.headers.get("x-edge-demo") for a in answers] == ["hello", "hello"]
    lost = [r for r in caplog.records if "no plugin instance" in r.getMessage().lower()]
    assert len(lost) == 1


def test_the_readiness_check_answers_only_when_every_server_answers(  # type: ignore[no-untyped-def]
    upstream, tmp_path
):
    """edge-plugins-ready (shipped in the Kong image for readiness probes) sends each socket
    kong-pdk's plugin.GetStatus: a missing socket, or one that accepts and stays silent,
    is not ready."""
    import socket
    import subprocess

    from tests.support.harness import BIN_DIR

    def ready(*sockets: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN_DIR / "edge-plugins-ready"), "--timeout", "1", *sockets],
            capture_output=True,
            text=True,
            timeout=30,
        )

    silent_path = str(tmp_path / "silent.socket")
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(silent_path)
        silent.listen(1)
        with HarnessRunner(_yml(upstream.port, plugins=_route_plugin("r-demo"))) as runner:
            (server,) = runner.settings.kong_conf.pluginservers
            up = ready(server.socket)
            missing = ready(server.socket, str(tmp_path / "absent.socket"))
            mute = ready(silent_path)
    assert up.returncode == 0, up.stderr
    assert missing.returncode == 1 and "absent.socket" in missing.stderr
    assert mute.returncode == 1 and "silent.socket" in mute.stderr


def _starts_logged(caplog: pytest.LogCaptureFixture, server: str) -> int:
    """How many times the harness logged starting ``server`` (process.lua's line)."""
    line = f"starting pluginserver process for {server}"
    return sum(line in record.getMessage() for record in caplog.records)


def _kill_and_await_respawn(gw: HarnessRunner, process: Any) -> None:
    """Kill a plugin server and wait until its respawned successor listens."""
    first_pid = process.pid
    process.kill()
    deadline = time.monotonic() + 15
    while process.pid in (None, first_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.run(process.wait_ready())
