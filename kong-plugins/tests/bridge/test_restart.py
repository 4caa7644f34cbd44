"""A restarted plugin server and a worker's stale instance id (kong/runloop/plugin_servers/
plugin.lua ``get_instance_id``: an id Kong holds is used as is until the server answers
"no plugin instance"). kong-pdk numbers instances from 0 in every process, so after a
restart the id one worker kept for its config can name the instance another worker just
started for another config, and the request runs with the wrong config. Our bridge starts
its ids at a random base: the stale id names nothing and Kong starts its instance again
(mp_rpc.lua ``Rpc:handle_event``)."""

from __future__ import annotations

import time

import pytest

from tests.support.harness import BASE_SERVER_FLAGS, KONG_PDK_BRIDGE_FLAGS, HarnessRunner

BRIDGES = {"kong-pdk": KONG_PDK_BRIDGE_FLAGS, "edge": BASE_SERVER_FLAGS}


def _wait_respawned(gateway: HarnessRunner, pid: int | None) -> None:
    process = gateway.gateway.processes["edge-demo"]
    deadline = time.monotonic() + 10
    while process.pid in (None, pid):
        assert time.monotonic() < deadline, "edge-demo was not respawned"
        time.sleep(0.05)
    gateway.run(process.wait_ready())


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
def test_a_stale_instance_id_after_a_restart_runs_the_right_config(
    harness_factory, upstream, bridge: str
) -> None:  # type: ignore[no-untyped-def]
    yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: r-one, paths: [/one]}}
          - {{name: r-two, paths: [/two]}}
    plugins:
      - {{name: edge-demo, route: r-one, config: {{greeting: one}}}}
      - {{name: edge-demo, route: r-two, config: {{greeting: two}}}}
    """
    gateway = harness_factory(yml, workers=2, flags={"edge-demo": BRIDGES[bridge]})
    with gateway.client() as client:  # the harness hands requests to workers in turn
        assert client.get("/one").headers["x-edge-demo"] == "one"  # worker 0 starts "one"
        process = gateway.gateway.processes["edge-demo"]
        pid = process.pid
        process.kill()
        _wait_respawned(gateway, pid)
        assert client.get("/two").headers["x-edge-demo"] == "two"  # worker 1 starts "two"
        seen = client.get("/one").headers.get("x-edge-demo")  # worker 0, its old id
    assert seen == ("two" if bridge == "kong-pdk" else "one")
