"""The guard (edge_plugins.guard) against kong-pdk 0.36's hangs, shown on a real server.

On kong-pdk's own bridge (``--kong-pdk-bridge``), kong_pdk/server.py ``handle_event`` holds
``e_lock`` until the handler's first PDK call; ``_step`` waits for the handler's next
message. The unguarded tests show the hangs there (Kong's socket timeout, here 1.5 s, then
fail-open per mp_rpc.lua), and on edge_plugins.pdk_bridge an RPC error at once (the same
fail-open, without the wait, and no other request held up); the guarded ones show the
declared failure policy instead, with the server still serving, on both.
"""

from __future__ import annotations

import logging

import pytest

from tests.support.harness import BASE_SERVER_FLAGS, KONG_PDK_BRIDGE_FLAGS, header

TIMEOUT = 1.5
BRIDGES = {"kong-pdk": KONG_PDK_BRIDGE_FLAGS, "edge": BASE_SERVER_FLAGS}


def _gateway(harness_factory, upstream, config: str, flags: str | None = None):  # type: ignore[no-untyped-def]
    yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: r-faulty, paths: [/faulty]}}
          - {{name: r-healthy, paths: [/healthy]}}
    plugins:
      - name: edge-demo
        route: r-faulty
        config: {config}
      - name: edge-demo
        route: r-healthy
        config: {{greeting: alive}}
    """
    chosen = {"flags": {"edge-demo": flags}} if flags else {}
    return harness_factory(yml, plugin_timeout=TIMEOUT, workers=1, **chosen)


@pytest.fixture
def timeouts(caplog):  # type: ignore[no-untyped-def]
    """Whether Kong's socket timeout ended a plugin call: the harness logs it as mp_rpc.lua
    does ("[edge-demo] timeout"). Asserted instead of how long a request took, which a
    loaded machine stretches; a call that fails at once logs its error, not a timeout."""
    caplog.set_level(logging.ERROR, logger="kong_harness.plugin_servers")

    def get(client, path):  # type: ignore[no-untyped-def]
        caplog.clear()
        response = client.get(path)
        timed_out = any(r.getMessage() == "[edge-demo] timeout" for r in caplog.records)
        return response, timed_out

    return get


def test_unguarded_raise_before_first_pdk_call_hangs_kong_pdk_whole_server(
    harness_factory, upstream, timeouts
):  # type: ignore[no-untyped-def]
    gw = _gateway(
        harness_factory, upstream, "{fail: before_pdk, unguarded: true}", KONG_PDK_BRIDGE_FLAGS
    )
    with gw.client() as client:
        faulty, faulty_timed_out = timeouts(client, "/faulty")
        healthy, healthy_timed_out = timeouts(client, "/healthy")
    # Kong fails open after its timeout: proxied without the plugin…
    assert faulty.status_code == 200 and faulty_timed_out
    # …and every later request on that server hangs too: the plugin is gone for good.
    assert healthy.status_code == 200 and healthy_timed_out
    assert "x-edge-demo" not in healthy.headers


def test_unguarded_raise_before_first_pdk_call_on_our_bridge_fails_open_at_once(
    harness_factory, upstream, timeouts
):  # type: ignore[no-untyped-def]
    gw = _gateway(
        harness_factory, upstream, "{fail: before_pdk, unguarded: true}", BASE_SERVER_FLAGS
    )
    with gw.client() as client:
        faulty, faulty_timed_out = timeouts(client, "/faulty")
        healthy, healthy_timed_out = timeouts(client, "/healthy")
    # An RPC error: Kong logs it and proxies without the plugin (mp_rpc.lua handle_event)…
    assert faulty.status_code == 200 and not faulty_timed_out
    assert "x-edge-demo" not in faulty.headers
    # …and the server goes on serving.
    assert healthy.headers["x-edge-demo"] == "alive" and not healthy_timed_out


def test_guarded_raise_before_first_pdk_call_fails_closed(harness_factory, upstream, timeouts):  # type: ignore[no-untyped-def]
    gw = _gateway(harness_factory, upstream, "{fail: before_pdk}")
    with gw.client() as client:
        faulty, timed_out = timeouts(client, "/faulty")
        healthy = client.get("/healthy")
    assert not timed_out
    assert faulty.status_code == 500
    assert faulty.json() == {
        "message": "An unexpected error occurred",
        "request_id": faulty.headers["x-kong-request-id"],
    }
    assert healthy.headers["x-edge-demo"] == "alive"


def test_guarded_fail_open_policy_lets_the_request_through(harness_factory, upstream, timeouts):  # type: ignore[no-untyped-def]
    gw = _gateway(harness_factory, upstream, "{fail: before_pdk, failure_policy: open}")
    with gw.client() as client:
        faulty, timed_out = timeouts(client, "/faulty")
        healthy = client.get("/healthy")
    assert not timed_out
    assert faulty.status_code == 200 and "x-edge-demo" not in faulty.headers
    assert healthy.headers["x-edge-demo"] == "alive"


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
@pytest.mark.parametrize("guarded", [False, True])
def test_raise_after_first_pdk_call(harness_factory, upstream, guarded, bridge, timeouts):  # type: ignore[no-untyped-def]
    config = "{fail: after_pdk}" if guarded else "{fail: after_pdk, unguarded: true}"
    gw = _gateway(harness_factory, upstream, config, BRIDGES[bridge])
    with gw.client() as client:
        faulty, timed_out = timeouts(client, "/faulty")
        reached_upstream = [header(r, "X-Edge-Demo") for r in upstream.requests[-1:]]
        healthy, healthy_timed_out = timeouts(client, "/healthy")
    if guarded:
        assert not timed_out
        assert faulty.status_code == 500
    else:
        # Kong goes on without the plugin's verdict; the header it set before raising is
        # already on the request. On kong-pdk's bridge only after Kong's timeout.
        assert timed_out is (bridge == "kong-pdk")
        assert faulty.status_code == 200
        assert reached_upstream == [["hello"]]
    assert healthy.headers["x-edge-demo"] == "alive"
    assert not healthy_timed_out
