"""``kong.log.serialize()`` fields that edge-trace builds its gateway span from, and response
headers set in access surviving a later plugin's exit.

Sources: kong/pdk/log.lua ``serialize`` (``latencies.kong = KONG_PROXY_LATENCY or
KONG_RESPONSE_LATENCY``, ``proxy = KONG_WAITING_TIME or -1``, request headers from
``kong.request.get_headers()``, ``route``, ``service``, ``client_ip = var.remote_addr``,
``started_at = kong.request.get_start_time()``), kong/init.lua access (a delayed response
sets ``KONG_RESPONSE_LATENCY = KONG_ACCESS_ENDED_AT - KONG_PROCESSING_START``),
kong/pdk/service/request.lua (``set_header`` edits the request in place with
``ngx.req.set_header``) and kong/pdk/response.lua (``set_header`` writes ``ngx.header``;
``exit`` adds its own headers to the same table).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

import kong_harness.pdk
from tests.support.harness import HarnessRunner

DELAY = 0.05


def _serialized(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    lines = [r.getMessage() for r in caplog.records if "serialized " in r.getMessage()]
    assert lines, "the log phase did not run"
    return json.loads(lines[-1].split("serialized ", 1)[1])


@pytest.fixture
def gateway(harness_factory: Any, upstream: Any) -> HarnessRunner:
    servers = {
        "edge-demo": {},
        "edge-early": {"EDGE_DEMO_NAME": "edge-early", "EDGE_DEMO_PRIORITY": "2000"},
    }
    yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: r-exit, paths: [/exit]}}
          - {{name: r-pass, paths: [/pass]}}
    plugins:
      - name: edge-early
        route: r-exit
        config: {{greeting: early}}
      - name: edge-demo
        route: r-exit
        config: {{exit_status: 403, header_name: X-Late, log_serialize: true}}
      - name: edge-demo
        route: r-pass
        config: {{greeting: set-in-access, log_serialize: true}}
    """
    return harness_factory(yml, servers=servers)


def test_exit_latency_is_kongs_response_latency(
    gateway: HarnessRunner, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="kong_harness.plugin.edge-demo")
    real_call = kong_harness.pdk.call

    def slow_access(ctx: kong_harness.pdk.RequestContext, method: str, args: list[Any]) -> Any:
        if ctx.phase == "access" and method == "kong.service.request.set_header":
            time.sleep(DELAY)  # make the access phase measurably long
        return real_call(ctx, method, args)

    monkeypatch.setattr(kong_harness.pdk, "call", slow_access)
    with gateway.client() as client:
        response = client.get("/exit")
    assert response.status_code == 403
    gateway.drain_logs()
    latencies = _serialized(caplog)["latencies"]
    assert latencies["kong"] >= DELAY * 1000 * 2  # two plugins each slept in access
    assert latencies["kong"] == int(response.headers["x-kong-response-latency"])
    assert latencies["proxy"] == -1


def test_access_response_header_survives_a_later_exit(gateway: HarnessRunner) -> None:
    with gateway.client() as client:
        response = client.get("/exit")
    assert response.status_code == 403
    assert response.headers["x-edge-demo"] == "early"  # set by edge-early in access
    assert response.headers["x-late"] == "exit"  # the exit's own header


def test_serialize_fields_edge_trace_reads(
    gateway: HarnessRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kong_harness.plugin.edge-demo")
    before_ms = time.time() * 1000
    with gateway.client() as client:
        response = client.get("/pass/x?y=1", headers={"User-Agent": "ua/2"})
    after_ms = time.time() * 1000
    assert response.status_code == 200
    gateway.drain_logs()
    entry = _serialized(caplog)
    request = entry["request"]
    assert request["headers"]["x-edge-demo"] == "set-in-access"  # as sent upstream
    assert request["headers"]["user-agent"] == "ua/2"
    assert request["method"] == "GET" and request["uri"] == "/pass/x?y=1"
    assert request["url"].startswith("http://127.0.0.1:") and request["url"].endswith("/pass/x?y=1")
    assert entry["route"]["name"] == "r-pass" and entry["route"]["paths"] == ["/pass"]
    assert entry["service"]["name"] == "echo"
    assert entry["client_ip"] == "127.0.0.1"
    assert before_ms - 1 <= entry["started_at"] <= after_ms
    assert entry["response"]["status"] == 200
    assert set(entry["latencies"]) == {"kong", "proxy", "request", "receive"}
    assert entry["latencies"]["proxy"] >= 0
