"""edge-rate-limit through the harness: real plugin-server processes, Kong's phases, two
workers (each with its own plugin instances, as in Kong: kong/runloop/plugin_servers/
plugin.lua), a recording upstream.

The repository's own kong.yml limits against the real backend: test_edge_rate_limit_e2e.py;
Redis shared by two gateway nodes and Redis failures: test_edge_rate_limit_redis.py.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
import yaml

from edge_plugins.responses import QUOTA_EXCEEDED_TYPE
from tests.support.harness import TEST_PLUGINS

SUBJECT_PLUGIN = TEST_PLUGINS / "subject.py"
SERVERS: dict[str, dict[str, str]] = {"edge-rate-limit": {}, "edge-subject": {}}
COMMANDS = {
    "edge-rate-limit": "edge-rate-limit --metrics-port 0",
    "edge-subject": f"python {SUBJECT_PLUGIN}",
}


def kong_yml(
    upstream_port: int,
    plugins: list[dict[str, Any]],
    routes: tuple[str, ...] = ("login", "profile", "other"),
) -> str:
    return yaml.safe_dump(
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "up",
                    "url": f"http://127.0.0.1:{upstream_port}",
                    "routes": [{"name": r, "paths": [f"/{r}"]} for r in routes],
                }
            ],
            "plugins": [{"name": "edge-subject"}, *plugins],
        },
        sort_keys=False,
    )


def limit(route: str | None, **config: Any) -> dict[str, Any]:
    plugin: dict[str, Any] = {"name": "edge-rate-limit", "config": config}
    if route is not None:
        plugin["route"] = route
    return plugin


def test_sixth_login_in_a_minute_is_rejected_with_headers(
    harness_factory: Any, upstream: Any
) -> None:
    yml = kong_yml(
        upstream.port, [limit("login", limits=[{"limit": 5, "period": "minute"}], limit_by="ip")]
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    before = len(upstream.requests)
    with gw.client() as client:
        answers = [
            client.post("/login", headers={"X-Request-ID": f"req-{i:08d}"}) for i in range(6)
        ]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert [r.headers["RateLimit-Remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert answers[0].headers["RateLimit-Policy"] == '"minute";q=5;w=60'
    assert answers[0].headers["X-RateLimit-Limit-Minute"] == "5"
    rejected = answers[5]
    assert 1 <= int(rejected.headers["Retry-After"]) <= 60
    assert rejected.headers["RateLimit"].startswith('"minute";r=0;t=')
    assert rejected.headers["Content-Type"].startswith("application/json")
    body = rejected.json()
    assert body["type"] == QUOTA_EXCEEDED_TYPE and body["status"] == 429
    assert body["violated-policies"] == ["minute"]
    assert body["message"] == "API rate limit exceeded"
    assert body["request_id"] == "req-00000005"
    assert len(upstream.requests) - before == 5, "the rejected request never reached upstream"


# `consumer`: the deprecated alias, accepted by Kong's schema and counting the same way.
@pytest.mark.parametrize("limit_by", ["subject", "consumer"])
def test_per_user_keys_do_not_collide(harness_factory: Any, upstream: Any, limit_by: str) -> None:
    yml = kong_yml(
        upstream.port,
        [limit("profile", limits=[{"limit": 2, "period": "minute"}], limit_by=limit_by)],
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:

        def statuses(subject: str | None) -> list[int]:
            headers = {"X-Test-Subject": subject} if subject else {}
            return [client.get("/profile", headers=headers).status_code for _ in range(3)]

        assert statuses("alice") == [200, 200, 429]
        assert statuses("bob") == [200, 200, 429], "bob has his own counter"
        assert statuses(None) == [200, 200, 429], "anonymous: keyed by client IP"


def test_routes_do_not_share_counters_and_the_global_default_applies(
    harness_factory: Any, upstream: Any
) -> None:
    one = [{"limit": 1, "period": "minute"}]
    yml = kong_yml(
        upstream.port,
        [
            limit(None, limits=[{"limit": 3, "period": "minute"}], limit_by="ip"),
            limit("login", limits=one, limit_by="ip"),
            limit("profile", limits=one, limit_by="ip"),
        ],
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        assert [client.get("/login").status_code for _ in range(2)] == [200, 429]
        assert [client.get("/profile").status_code for _ in range(2)] == [200, 429]
        other = [client.get("/other") for _ in range(4)]
    assert [r.status_code for r in other] == [200, 200, 200, 429]
    assert other[0].headers["RateLimit-Limit"] == "3", "the global default"


def test_shadow_mode_never_rejects_and_shows_no_headers(
    harness_factory: Any, upstream: Any
) -> None:
    yml = kong_yml(
        upstream.port,
        [limit("login", limits=[{"limit": 1, "period": "minute"}], limit_by="ip", shadow=True)],
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        answers = [client.get("/login") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert not any("RateLimit-Limit" in r.headers for r in answers)


def test_gcra_admits_the_burst_then_rejects(harness_factory: Any, upstream: Any) -> None:
    yml = kong_yml(
        upstream.port,
        [
            limit(
                "login",
                limits=[{"limit": 2, "period": "hour", "burst": 2}],
                limit_by="ip",
                algorithm="gcra",
                hide_client_headers=True,
            )
        ],
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        answers = [client.get("/login") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert "RateLimit-Limit" not in answers[0].headers, "hidden"
    # The steady rate is one per half hour: the wait says so (rounded up).
    assert 1790 <= int(answers[2].headers["Retry-After"]) <= 1800
    assert json.loads(answers[2].content)["violated-policies"] == ["hour"]


def test_a_config_the_core_refuses_fails_closed(harness_factory: Any, upstream: Any) -> None:
    # Schema-valid (Kong accepts it) but no window: StartInstance logs, requests get 500.
    yml = kong_yml(upstream.port, [limit("login", limits=[{"limit": 5}])])
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    with gw.client() as client:
        answer = client.get("/login")
    assert answer.status_code == 500
    assert "limit" not in answer.text.lower(), "no config detail leaks to the client"


def test_admitted_request_costs_two_pdk_round_trips(
    harness_factory: Any, upstream: Any, monkeypatch: Any
) -> None:
    """Counted where the harness answers PDK calls (kong_harness.pdk.call, looked up by the
    RPC bridge on every step): one read for the key, one write of the headers."""
    import kong_harness.pdk

    yml = kong_yml(
        upstream.port, [limit("login", limits=[{"limit": 5, "period": "minute"}], limit_by="ip")]
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    calls: list[tuple[str, str]] = []
    real_call = kong_harness.pdk.call

    def counting(ctx: Any, method: str, args: list[Any]) -> Any:
        calls.append((ctx.plugin_name, method))
        return real_call(ctx, method, args)

    monkeypatch.setattr(kong_harness.pdk, "call", counting)
    with gw.client() as client:
        for _ in range(3):  # the first one also asks for the route name (metrics label)
            assert client.get("/login").status_code == 200
        calls.clear()
        assert client.get("/login").status_code == 200
    mine = [method for plugin, method in calls if plugin == "edge-rate-limit"]
    assert mine == ["kong.client.get_forwarded_ip", "kong.response.set_headers"]


def post_raw(
    port: int, path: str, headers: list[tuple[str, bytes]]
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """A POST with header values written as the given bytes (httpx refuses non-ASCII)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_a_request_id_that_is_not_utf8_past_the_limit_is_still_rejected(
    harness_factory: Any, upstream: Any
) -> None:
    """Kong passes the header's raw bytes to the plugin server (mp_rpc.lua); without
    edge-trace on the route edge-rate-limit reads the client's own ``X-Request-ID``. It must
    neither let the request through (its failure policy is open) nor echo those bytes."""
    yml = kong_yml(
        upstream.port, [limit("login", limits=[{"limit": 1, "period": "minute"}], limit_by="ip")]
    )
    gw = harness_factory(yml, servers=SERVERS, commands=COMMANDS)
    before = len(upstream.requests)
    answers = [post_raw(gw.port, "/login", [("X-Request-ID", b"\xff")]) for _ in range(2)]
    assert [status for status, _, _ in answers] == [200, 429]
    _, headers, content = answers[1]
    assert 1 <= int(headers["Retry-After"]) <= 60
    body = json.loads(content)
    assert body["violated-policies"] == ["minute"]
    assert "request_id" not in body, "the client's bytes are not echoed"
    assert len(upstream.requests) - before == 1, "the rejected request never reached upstream"
