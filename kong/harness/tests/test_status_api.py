"""Kong's own endpoints in the harness: the Status API (/status, /status/ready, prometheus's
/metrics) and the read-only Admin API, as Kong 3.9.3 serves them.

Kong sources: kong/status/init.lua, kong/status/ready.lua, kong/api/routes/health.lua,
kong/api/routes/kong.lua, kong/api/api_helpers.lua, kong/plugins/prometheus/{schema,handler,
exporter,prometheus,status_api}.lua.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kong_harness.gateway import Gateway, GatewayConfigError
from kong_harness.kong_api import parse_listen, status_app
from tests.support.harness import KONG_NAMING_LINT, HarnessRunner

# kong/plugins/prometheus/exporter.lua
KONG_BUCKETS = [
    "1",
    "2",
    "5",
    "7",
    "10",
    "15",
    "20",
    "30",
    "50",
    "75",
    "100",
    "200",
    "500",
    "750",
    "1000",
    "3000",
    "6000",
    "+Inf",
]
UPSTREAM_BUCKETS = [
    "25",
    "50",
    "80",
    "100",
    "250",
    "400",
    "700",
    "1000",
    "2000",
    "5000",
    "10000",
    "30000",
    "60000",
    "+Inf",
]
ON = "{status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true}"


def _yml(port: int, prometheus: str | None = ON) -> str:
    plugins = f"  - name: prometheus\n    config: {prometheus}\n" if prometheus else ""
    return f"""\
_format_version: "3.0"
services:
  - name: svc
    url: http://127.0.0.1:{port}
    routes:
      - {{name: r-ok, paths: [/ok]}}
      - {{name: r-exit, paths: [/exit]}}
plugins:
{plugins}  - name: edge-demo
    route: r-exit
    config: {{exit_status: 418}}
"""


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition parsed by prometheus_client's parser (it refuses a malformed one)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def test_status_api_answers_kongs_shapes(harness_factory: Any, upstream: Any) -> None:
    runner = harness_factory(_yml(upstream.port), status=True)
    with httpx.Client(base_url=runner.status_url, trust_env=False) as status:
        body = status.get("/status").json()
        # health.lua, DB-less: memory, server (kong.nginx.get_statistics), configuration_hash;
        # the database entry removed
        assert set(body) == {"memory", "server", "configuration_hash"}
        assert set(body["server"]) == {
            "connections_active",
            "connections_reading",
            "connections_writing",
            "connections_waiting",
            "connections_accepted",
            "connections_handled",
            "total_requests",
        }
        assert body["server"]["total_requests"] >= 1
        assert body["server"]["connections_writing"] >= 1  # this request
        assert set(body["memory"]) == {"workers_lua_vms", "lua_shared_dicts"}
        assert body["memory"]["workers_lua_vms"][0]["http_allocated_gc"].endswith(" MiB")
        assert len(body["configuration_hash"]) == 32
        # nginx_kong.lua's zones (mem_cache_size 128m by default) and conf_loader's
        # prometheus_metrics (the plugin is loaded); the harness allocates nothing in them
        dicts = body["memory"]["lua_shared_dicts"]
        assert dicts["kong_db_cache"] == {"capacity": "128.00 MiB", "allocated_slabs": "0.00 MiB"}
        assert dicts["prometheus_metrics"]["capacity"] == "5.00 MiB"
        assert "kong_dns_cache" not in dicts  # new_dns_client is off by default
        assert len(dicts) == 11
        gc = status.get("/status", params={"unit": "k", "scale": "1"}).json()
        assert gc["memory"]["workers_lua_vms"][0]["http_allocated_gc"].endswith(" KiB")
        assert gc["memory"]["lua_shared_dicts"]["kong"]["capacity"] == "5120.0 KiB"
        bad = status.get("/status", params={"unit": "x"})
        assert bad.status_code == 400
        assert bad.json() == {"message": "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')"}
        # ready.lua: 200 once the router and plugins are built in every worker
        ready = status.get("/status/ready")
        assert (ready.status_code, ready.json()) == (200, {"message": "ready"})
        assert status.get("/status/").status_code == 200  # api_helpers default_route
        assert status.get("/nope").json() == {"message": "Not found"}
        assert status.delete("/status").status_code == 405
        # draining (ready.lua POST): then 503 "draining"
        assert status.post("/status/ready", json={"status": "draining"}).status_code == 204
        drained = status.get("/status/ready")
        assert (drained.status_code, drained.json()) == (503, {"message": "draining"})


def test_status_ready_is_503_before_the_router_is_built(tmp_path: Any) -> None:
    runner = HarnessRunner(_yml(1), status=True)
    try:
        gateway = Gateway(runner.settings)  # not started: no router, no workers
        transport = httpx.ASGITransport(app=status_app(gateway))

        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
                return await client.get("/status/ready")

        response = asyncio.run(get())
        assert response.status_code == 503
        assert response.json() == {
            "message": "router builds not yet complete, router ready in 0 of 2 workers"
        }
    finally:
        shutil.rmtree(runner.dir, ignore_errors=True)


def test_metrics_count_what_the_gateway_served(harness_factory: Any, upstream: Any) -> None:
    runner = harness_factory(_yml(upstream.port), status=True)
    egress_ok = 0
    with runner.client() as proxy:
        for _ in range(2):
            egress_ok += len(proxy.get("/ok").content)
        egress_ok += len(proxy.post("/ok", content=b"abcde").content)
        assert proxy.get("/nowhere").status_code == 404
        exited = proxy.get("/exit")
        assert exited.status_code == 418
    with httpx.Client(base_url=runner.status_url, trust_env=False) as status:
        deadline = time.monotonic() + 5
        while True:
            response = status.get("/metrics")
            samples = _samples(response.text)
            if samples or time.monotonic() > deadline:
                break
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    base = {"service": "svc", "workspace": "default"}
    requests = {
        labels: v for (name, labels), v in samples.items() if name == "kong_http_requests_total"
    }
    # exporter.lua: the router's 404 has no route and is not recorded; the exit is "kong"
    assert requests == {
        _labels(
            service="svc",
            route="r-ok",
            code="200",
            source="service",
            workspace="default",
            consumer="",
        ): 3,
        _labels(
            service="svc",
            route="r-exit",
            code="418",
            source="kong",
            workspace="default",
            consumer="",
        ): 1,
    }
    # Kong's counter is named kong_bandwidth_bytes (no _total); prometheus_client's parser
    # reports counter samples with a _total suffix
    assert "\nkong_bandwidth_bytes{" in response.text
    bandwidth = {
        labels: v for (name, labels), v in samples.items() if name == "kong_bandwidth_bytes_total"
    }
    assert bandwidth == {
        _labels(**base, route="r-ok", direction="ingress", consumer=""): 5,
        _labels(**base, route="r-ok", direction="egress", consumer=""): egress_ok,
        _labels(**base, route="r-exit", direction="egress", consumer=""): len(exited.content),
    }
    for metric, buckets, counts in (
        ("kong_request_latency_ms", UPSTREAM_BUCKETS, {"r-ok": 3, "r-exit": 1}),
        ("kong_upstream_latency_ms", UPSTREAM_BUCKETS, {"r-ok": 3}),  # an exit: proxy -1
        ("kong_kong_latency_ms", KONG_BUCKETS, {"r-ok": 3, "r-exit": 1}),
    ):
        for route in ("r-ok", "r-exit"):
            labels = _labels(service="svc", route=route, workspace="default")
            bucket_les = [
                dict(lbl)["le"]
                for (name, lbl), _ in samples.items()
                if name == metric + "_bucket" and lbl - {("le", dict(lbl)["le"])} == labels
            ]
            if route not in counts:
                assert bucket_les == [] and (metric + "_count", labels) not in samples
                continue
            assert bucket_les == buckets  # Kong's buckets, in order
            assert samples[(metric + "_count", labels)] == counts[route]
            assert samples[(metric + "_bucket", labels | {("le", "+Inf")})] == counts[route]
    node_id = runner.gateway.node_id
    assert samples[("kong_node_info", _labels(node_id=node_id, version="3.9.3"))] == 1
    assert samples[("kong_datastore_reachable", frozenset())] == 1
    assert samples[("kong_nginx_metric_errors_total", frozenset())] == 0
    total = samples[("kong_nginx_requests_total", _labels(node_id=node_id, subsystem="http"))]
    assert total >= 6  # five proxied + this scrape (nginx counts every server block)
    states = {
        dict(lbl)["state"] for (name, lbl) in samples if name == "kong_nginx_connections_total"
    }
    assert states == {"accepted", "handled", "total", "active", "reading", "writing", "waiting"}
    if shutil.which("promtool"):
        # The exposition parses; its only lint findings are those of Kong's own metric names
        # (kong/plugins/prometheus/exporter.lua), which the harness must keep as they are.
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=response.content,
            capture_output=True,
            check=False,
        )
        findings = set(checked.stderr.decode().splitlines()) - {""}
        assert findings == KONG_NAMING_LINT, checked.stdout + checked.stderr


def test_metrics_without_a_prometheus_plugin_has_only_node_metrics(
    harness_factory: Any, upstream: Any
) -> None:
    runner = harness_factory(_yml(upstream.port, prometheus=None), status=True)
    with runner.client() as proxy:
        assert proxy.get("/ok").status_code == 200
    with httpx.Client(base_url=runner.status_url, trust_env=False) as status:
        response = status.get("/metrics")
    # prometheus.lua metric_data(local_only): loaded (kong.conf plugins = bundled) but not
    # configured, only the node-wide gauges
    assert response.status_code == 200
    names = {name for name, _ in _samples(response.text)}
    assert names == {
        "kong_nginx_connections_total",
        "kong_nginx_requests_total",
        "kong_nginx_timers",
        "kong_datastore_reachable",
        "kong_node_info",
        # exporter.lua init(): LOCAL_STORAGE gauges of kong.node.get_memory_stats()
        "kong_memory_workers_lua_vms_bytes",
        "kong_memory_lua_shared_dict_bytes",
        "kong_memory_lua_shared_dict_total_bytes",
    }


def test_metrics_is_404_when_prometheus_is_not_loaded(harness_factory: Any, upstream: Any) -> None:
    # kong/status/init.lua attaches status_api.lua of loaded plugins only
    runner = harness_factory(
        _yml(upstream.port, prometheus=None), status=True, conf_lines=("plugins = edge-demo",)
    )
    with httpx.Client(base_url=runner.status_url, trust_env=False) as status:
        response = status.get("/metrics")
    assert (response.status_code, response.json()) == (404, {"message": "Not found"})


def test_admin_api_root_and_status(harness_factory: Any, upstream: Any) -> None:
    runner = harness_factory(_yml(upstream.port), admin=True)
    with httpx.Client(base_url=runner.admin_url, trust_env=False) as admin:
        root = admin.get("/").json()
        status = admin.get("/status")
        assert admin.post("/").status_code == 405
        assert admin.post("/services", json={"name": "x"}).json() == {"message": "Not found"}
    assert root["tagline"] == "Welcome to kong"
    assert root["version"] == "3.9.3"
    assert root["edition"] == "community"
    assert root["node_id"] == runner.gateway.node_id
    assert root["plugins"]["available_on_server"]["prometheus"] == {
        "version": "3.9.3",
        "priority": 13,
    }
    assert root["plugins"]["available_on_server"]["edge-demo"]["priority"] == 1000
    assert root["plugins"]["enabled_in_cluster"] == ["prometheus", "edge-demo"]
    assert root["configuration"]["database"] == "off"
    assert status.status_code == 200
    assert set(status.json()) == {"memory", "server", "configuration_hash"}


def test_a_bad_prometheus_config_refuses_the_start(upstream: Any) -> None:
    runner = HarnessRunner(_yml(upstream.port, prometheus="{status_code_metrics: yes-please}"))
    try:
        with pytest.raises(GatewayConfigError) as err:
            runner.start()
        assert "declarative config is invalid: plugin 'prometheus'" in str(err.value)
        assert "config.status_code_metrics: expected a boolean" in str(err.value)
    finally:
        runner.stop()


def test_listen_syntax() -> None:
    assert parse_listen("status_listen", "off") == []
    listens = parse_listen("status_listen", "0.0.0.0:8100 reuseport backlog=16384, [::1]:9")
    assert [(x.host, x.port) for x in listens] == [("0.0.0.0", 8100), ("::1", 9)]
    with pytest.raises(GatewayConfigError):
        parse_listen("admin_listen", "127.0.0.1:8444 http2 ssl")
    with pytest.raises(GatewayConfigError):
        parse_listen("admin_listen", "nonsense")
