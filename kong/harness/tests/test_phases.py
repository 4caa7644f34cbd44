"""Kong's rewrite and response phases for external plugins.

kong/init.lua: rewrite runs the *global* plugins iterator before the router (a route- or
service-scoped plugin never gets a rewrite call); a plugin with a response phase makes Kong
buffer the upstream answer and run the phase before anything reaches the client
(execute_collected_plugins_iterator "response"); kong/pdk/service/response.lua gives it the
upstream's status and headers.
"""

from __future__ import annotations

from tests.support.harness import TEST_PLUGINS, header

PLUGIN = TEST_PLUGINS / "phases.py"
SERVERS = {"edge-phases": {}}
COMMANDS = {"edge-phases": f"python {PLUGIN}"}  # BIN_DIR / "python …" is the venv's python


def _yml(upstream_port: int, scope: str) -> str:
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}
        routes:
          - {{name: r, paths: [/p]}}
    plugins:
      - name: edge-phases
        {scope}
    """


def test_global_plugin_runs_rewrite_access_and_response(harness_factory, upstream):  # type: ignore[no-untyped-def]
    gw = harness_factory(_yml(upstream.port, ""), servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        response = client.get("/p/x")
    assert header(upstream.last, "X-Rewrite") == ["ran"]
    assert header(upstream.last, "X-Access") == ["ran"]
    assert response.status_code == 200
    assert response.headers["x-seen"] == "200 echo"  # the upstream's status and header
    assert response.json()["path"] == "/x"  # the buffered body arrives whole


def test_route_plugin_gets_no_rewrite_phase(harness_factory, upstream):  # type: ignore[no-untyped-def]
    gw = harness_factory(_yml(upstream.port, "route: r"), servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        response = client.get("/p/y")
    assert header(upstream.last, "X-Rewrite") == []
    assert header(upstream.last, "X-Access") == ["ran"]
    assert response.headers["x-seen"] == "200 echo"


def test_no_response_phase_on_kongs_own_404(harness_factory, upstream):  # type: ignore[no-untyped-def]
    """Nothing was proxied, so there is no upstream answer for a response phase to see."""
    gw = harness_factory(_yml(upstream.port, ""), servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        response = client.get("/nowhere")
    assert response.status_code == 404
    assert "x-seen" not in response.headers
