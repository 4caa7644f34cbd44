"""Where the harness used to be kinder than Kong 3.9.3, pinned call by call.

Each test names the Kong 3.9.3 source it reproduces (tag 3.9.3 of Kong/kong, and the
OpenResty 1.25.3.2 / nginx 1.25.3 it bundles).
"""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path
from typing import Any

import pytest
from harness_test_support import CONF, ScriptedServer, demo_route_yml, scripted_worker

from kong_harness import pdk, realip
from kong_harness.conf import KongConf
from kong_harness.gateway import Gateway, GatewaySettings
from kong_harness.plugin_servers import PluginAborted
from tests.support.harness import request_context


def _ctx(**overrides: Any) -> pdk.RequestContext:
    return request_context(**{"raw_query": "a=1", **overrides})


def _header(ctx: pdk.RequestContext, name: str) -> Any:
    return pdk.call(ctx, "kong.request.get_header", [name])[1]


# --- 1. kong.request.get_header: kong/tools/http.lua get_header ---------------------------


def test_get_header_repeated_header_is_its_first_value() -> None:
    """kong/tools/http.lua get_header: $http_x_api_key is "a, b" (contains ", "), so the
    value comes from ngx.req.get_headers()["X-Api-Key"] — a table — and is its [1]."""
    ctx = _ctx(headers=[("X-Api-Key", "a"), ("x-api-key", "b")])
    assert _header(ctx, "X-Api-Key") == "a"
    assert _header(ctx, "x_api_key") == "a"  # the table lookup reads '_' in the name as '-'


def test_get_header_single_value_with_comma_space_stays_whole() -> None:
    """One line "a, b": the fallback finds a string, returned whole; "a,b" never falls back."""
    assert _header(_ctx(headers=[("X-A", "a, b")]), "x-a") == "a, b"
    assert _header(_ctx(headers=[("X-A", "a, b"), ("X-A", "c")]), "x-a") == "a, b"
    assert _header(_ctx(headers=[("X-A", "a,b")]), "x-a") == "a,b"


def test_get_header_fallback_sees_only_the_first_100_lines() -> None:
    """The fallback is ngx.req.get_headers() with lua_max_req_headers (100, kong_defaults.lua):
    a repeated header past line 100 is nil; a single one is still read from $http_*."""
    filler = [(f"X-F{i}", "x") for i in range(100)]
    assert _header(_ctx(headers=[*filler, ("X-K", "1"), ("X-K", "2")]), "X-K") is None
    assert _header(_ctx(headers=[*filler, ("X-K", "1")]), "X-K") == "1"


def test_get_header_underscore_variants() -> None:
    """$http_x_foo matches X-Foo and X_Foo lines alike (nginx lower-cases and reads '-' as
    '_' in the names sent; underscores_in_headers on, nginx_kong.lua); the table lookup of
    lua-resty-core's req_headers_mt first tries the name as asked, then lower-cased with
    '_' as '-'. So two X_Foo lines asked as "x-foo" are nil, asked as "x_foo" the first."""
    ctx = _ctx(headers=[("X_Foo", "1"), ("X_Foo", "2")])
    assert _header(ctx, "x-foo") is None
    assert _header(ctx, "x_foo") == "1"
    assert _header(ctx, "X_Foo") is None  # "X_Foo" misses raw, "x-foo" misses too
    mixed = _ctx(headers=[("X_Foo", "1"), ("X-Foo", "2")])
    assert _header(mixed, "X-Foo") == "2" and _header(mixed, "x_foo") == "1"


def test_get_header_cookie_lines_are_joined_with_semicolons() -> None:
    """$http_cookie joins lines with "; " (ngx_http_variable_cookie): no ", ", no fallback."""
    ctx = _ctx(headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
    assert _header(ctx, "Cookie") == "a=1; b=2"


def test_log_phase_get_header_uses_the_saved_table_with_its_lookup() -> None:
    """plugin.lua exposed_api["kong.request.get_header"]: saved.request_headers[name] (the
    ngx.req.get_headers() table, metatable lookup), first value of a table."""
    saved = {"x-api-key": ["a", "b"], "x_raw": ["r"]}
    ctx = _ctx(phase="log", snapshot={"request_headers": saved})
    assert _header(ctx, "X-Api-Key") == "a"
    assert _header(ctx, "X_API_KEY") == "a"
    assert _header(ctx, "x_raw") == "r"


# --- 2. the log phase runs in a timer: kong/runloop/plugin_servers/plugin.lua -------------


def _log_ctx(**kw: Any) -> pdk.RequestContext:
    snapshot = {
        "serialize_data": {"request": {}},
        "request_headers": {"x-a": ["1"]},
        "response_headers": {"x-r": ["2"]},
        "response_status": 201,
    }
    route = {"id": "r1", "protocols": ["http", "https"]}
    return _ctx(phase="log", snapshot=snapshot, route=route, **kw)


TIMER_THROWS = [
    ("kong.request.get_method", []),
    ("kong.request.get_scheme", []),
    ("kong.request.get_host", []),
    ("kong.request.get_port", []),
    ("kong.request.get_path", []),
    ("kong.request.get_raw_path", []),
    ("kong.request.get_path_with_query", []),
    ("kong.request.get_raw_query", []),
    ("kong.request.get_query", []),
    ("kong.request.get_query_arg", ["a"]),
    ("kong.request.get_forwarded_scheme", []),
    ("kong.request.get_forwarded_host", []),
    ("kong.request.get_forwarded_port", []),
    ("kong.client.get_ip", []),
    ("kong.client.get_forwarded_ip", []),
    ("kong.service.response.get_status", []),
    ("kong.service.response.get_headers", []),
    ("kong.service.response.get_header", ["x"]),
    ("kong.client.get_protocol", []),  # two protocols: it asks get_ip()
]


@pytest.mark.parametrize(("method", "args"), TIMER_THROWS)
def test_log_phase_calls_that_need_the_request_throw(method: str, args: list[Any]) -> None:
    """plugin.lua build_phases: the log handler runs in ngx.timer.at; what exposed_api does
    not serve from the saved data reads ngx.var / ngx.req / ngx.resp there, and
    lua-resty-core throws "no request found" (kong/pdk/request.lua, client.lua,
    service/response.lua)."""
    with pytest.raises(pdk.LuaError, match="no request"):
        pdk.call(_log_ctx(), method, args)


def test_log_phase_http_version_is_the_c_api_message() -> None:
    with pytest.raises(pdk.LuaError, match="no request object found"):
        pdk.call(_log_ctx(), "kong.request.get_http_version", [])


def test_log_phase_phase_errors_come_before_the_timer_error() -> None:
    """kong/pdk/private/phases.lua check_phase runs first (the saved ngx.ctx says "log")."""
    with pytest.raises(pdk.LuaError, match="cannot be called in log phase"):
        pdk.call(_log_ctx(), "kong.response.exit", [200])
    with pytest.raises(pdk.LuaError, match="cannot be called in log phase"):
        pdk.call(_log_ctx(), "kong.request.get_raw_body", [])


def test_log_phase_calls_served_in_the_timer() -> None:
    """exposed_api overrides (saved data) and PDK code reading only ngx.ctx, the node or
    kong.configuration (router.lua, node.lua, ip.lua, request.lua get_start_time)."""
    ctx = _log_ctx()
    ok = {
        "kong.request.get_headers": ([2000], {"x-a": ["1"]}),  # no max_headers checks
        "kong.request.get_header": (["X-A"], "1"),
        "kong.request.get_uri_captures": ([], {"unnamed": [], "named": {}}),
        "kong.request.get_start_time": ([], 1500.0),
        "kong.response.get_status": ([], 201),
        "kong.response.get_headers": ([], {"x-r": ["2"]}),
        "kong.response.get_header": (["X_R"], "2"),
        "kong.response.get_source": ([], "error"),
        "kong.nginx.req_start_time": ([], 1.5),
        "kong.router.get_route": ([], {"id": "r1", "protocols": ["http", "https"]}),
        "kong.node.get_id": ([], "n"),
        "kong.ip.is_trusted": (["10.1.2.3"], True),
        "kong.log.err": (["x"], None),
    }
    for method, (args, expected) in ok.items():
        assert pdk.call(ctx, method, args)[1] == expected, method
    pdk.call(ctx, "kong.ctx.shared.set", ["k", "v"])
    assert pdk.call(ctx, "kong.ctx.shared.get", ["k"])[1] == "v"
    one = _ctx(phase="log", snapshot={}, route={"id": "r", "protocols": ["https"]})
    assert pdk.call(one, "kong.client.get_protocol", [])[1] == "https"


def test_log_phase_service_response_is_served_when_kong_buffered() -> None:
    """kong/pdk/service/response.lua: ngx.ctx.buffered_status/_headers answer in the timer."""
    ctx = _log_ctx(ngx_ctx={"buffered_proxying": True}, upstream_status=200)
    assert pdk.call(ctx, "kong.service.response.get_status", [])[1] == 200


async def test_log_phase_throw_leaves_the_plugin_server_without_a_reply() -> None:
    """mp_rpc.lua bridge_loop in the log timer: the throw ends the timer, nothing is sent
    back for the step (Kong logs the error)."""
    server = ScriptedServer(
        {
            "plugin.StartInstance": {"Id": 1},
            "plugin.HandleEvent": {
                "EventId": 1,
                "Data": {"Method": "kong.request.get_method", "Args": []},
            },
        }
    )
    async with server:
        with pytest.raises(PluginAborted, match="no request found"):
            await scripted_worker(server.path).handle_event(CONF, "log", _log_ctx())
        await asyncio.sleep(0.2)
    assert [m[2] for m in server.received] == ["plugin.StartInstance", "plugin.HandleEvent"]


# --- 3. realip: nginx's ngx_http_realip_module as kong/templates/nginx_kong.lua sets it ----


def _gateway(**conf: str) -> Gateway:
    values = {"trusted_ips": "127.0.0.0/8,10.0.0.0/8", **conf}
    settings = GatewaySettings(
        kong_conf=KongConf(values=values, prefix="/tmp", pluginservers=()),
        declarative_config=Path("/nonexistent.yml"),
    )
    return Gateway(settings)


def _remote_addr(gateway: Gateway, headers: list[tuple[str, str]], peer: str = "127.0.0.1") -> str:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "client": (peer, 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    return gateway._context(scope, b"", 0.0).remote_addr


def test_x_real_ip_takes_the_first_header_line() -> None:
    """headers_in.x_real_ip is the first X-Real-IP line (ngx_http_process_header_line)."""
    gw = _gateway()
    assert _remote_addr(gw, [("X-Real-IP", "1.1.1.1"), ("X-Real-IP", "2.2.2.2")]) == "1.1.1.1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not-an-ip", "127.0.0.1"),  # ngx_parse_addr_port declines: $remote_addr unchanged
        ("", "127.0.0.1"),
        ("1.2.3.4:8080", "1.2.3.4"),  # an address with a port: $remote_addr has no port
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),  # ngx_inet6_ntop keeps the dotted tail
        ("1.1.1.1, 2.2.2.2", "2.2.2.2"),  # the last item (ngx_http_get_forwarded_addr_internal)
        ("2.2.2.2, ", "2.2.2.2"),  # trailing separators skipped
        ("255.255.255.255", "127.0.0.1"),  # INADDR_NONE: ngx_inet_addr declines it
        ("1.2.3.4:0", "127.0.0.1"),  # port out of range
    ],
)
def test_x_real_ip_value_is_parsed_as_nginx_does(value: str, expected: str) -> None:
    assert _remote_addr(_gateway(), [("X-Real-IP", value)]) == expected


def test_x_real_ip_from_an_untrusted_peer_is_ignored() -> None:
    assert _remote_addr(_gateway(), [("X-Real-IP", "1.1.1.1")], peer="192.0.2.7") == "192.0.2.7"


def test_real_ip_recursive_walks_left_over_trusted_addresses() -> None:
    """real_ip_recursive on (alias of nginx_proxy_real_ip_recursive, conf_loader/constants.lua)."""
    on = _gateway(real_ip_recursive="on")
    assert _remote_addr(on, [("X-Real-IP", "1.1.1.1, 10.0.0.9")]) == "1.1.1.1"
    off = _gateway()
    assert _remote_addr(off, [("X-Real-IP", "1.1.1.1, 10.0.0.9")]) == "10.0.0.9"


def test_x_forwarded_for_lines_off_and_on() -> None:
    """ngx_http_get_forwarded_addr: all X-Forwarded-For lines, the last line first."""
    lines = [("X-Forwarded-For", "1.1.1.1, 10.0.0.2"), ("X-Forwarded-For", "10.0.0.3")]
    off = _gateway(real_ip_header="X-Forwarded-For")
    assert _remote_addr(off, lines) == "10.0.0.3"
    on = _gateway(nginx_proxy_real_ip_header="X-Forwarded-For", nginx_proxy_real_ip_recursive="on")
    assert _remote_addr(on, lines) == "1.1.1.1"
    assert _remote_addr(on, [("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.2")]) == "2.2.2.2"
    assert _remote_addr(on, [("X-Forwarded-For", "1.1.1.1, junk, 10.0.0.2")]) == "10.0.0.2"


def test_realip_settings_prefer_the_nginx_proxy_directives() -> None:
    """kong/conf_loader/init.lua aliased_properties: real_ip_header only fills the
    nginx_proxy_* directive when that is unset; defaults from kong_defaults.lua."""
    assert realip.settings({}) == ("X-Real-IP", False)
    assert realip.settings(
        {"real_ip_header": "X-Forwarded-For", "nginx_proxy_real_ip_header": "X-Client-IP"}
    ) == ("X-Client-IP", False)


# --- 4. nil, err is a plain result: kong/runloop/plugin_servers/rpc/mp_rpc.lua -------------


def test_nil_err_answers_plugin_step_with_nil() -> None:
    """call_pdk_method returns only ``ret``: get_step_method's pdk_err is always nil.
    kong/pdk/client.lua get_protocol without a route is ``nil, "No active route found"``."""
    assert pdk.call(_ctx(), "kong.client.get_protocol", []) == ("plugin.Step", None)


def test_raw_body_buffered_to_a_file_throws_in_fix_raw() -> None:
    """kong/pdk/request.lua get_raw_body: a body nginx buffered to a file (over
    client_body_buffer_size) without max_allowed_file_size is ``nil, err``; mp_rpc.lua
    must_fix["kong.request.get_raw_body"] = fix_raw packs nil as binary and throws."""
    ctx = _ctx(body=b"x" * 9000)
    with pytest.raises(pdk.LuaError, match="attempt to get length"):
        pdk.call(ctx, "kong.request.get_raw_body", [])
    assert pdk.call(ctx, "kong.request.get_raw_body", [0])[1] == b"x" * 9000  # 0: unlimited
    with pytest.raises(pdk.LuaError):
        pdk.call(ctx, "kong.request.get_raw_body", [100])  # "request body file too big"
    assert pdk.call(_ctx(body=b"small"), "kong.request.get_raw_body", []) == (
        "plugin.Step",
        b"small",
    )


# --- 5. more than max_headers header lines: nginx-1.25.3_17-CVE-2026-49975.patch ----------


def test_more_than_1000_header_lines_is_kongs_400(
    harness_factory,
    upstream,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """build/openresty/patches/nginx-1.25.3_17-CVE-2026-49975.patch: max_headers 1000; line
    1001 finalizes with 494, which kong/templates/nginx_kong.lua (error_page 494 =494) hands
    to kong/error_handlers.lua: 400 "Request header or cookie too large", typed by Accept,
    else Content-Type, else error_default_type (text/plain). No plugin, no upstream."""
    monkeypatch.setattr(http.client, "_MAXHEADERS", 2000)  # the recording upstream's limit
    gw = harness_factory(demo_route_yml(upstream.port))
    before = len(upstream.requests)
    with gw.client() as client:
        del client.headers["Accept"]  # httpx's default */* would pick JSON
        base = len(client.build_request("GET", "/p").headers.raw)

        def lines(total: int) -> list[tuple[str, str]]:
            return [(f"h{i}", "x") for i in range(total - base)]

        accepted = client.get("/p", headers=lines(1000))
        assert accepted.status_code == 200, accepted.text
        assert len(upstream.requests) == before + 1
        rejected = client.get("/p", headers=lines(1001))
        json_rejected = client.get("/p", headers=[*lines(1000), ("Accept", "application/json")])
    assert rejected.status_code == 400
    assert rejected.headers["content-type"] == "text/plain; charset=utf-8"
    rid = rejected.headers["x-kong-request-id"]
    assert rejected.text == f"Request header or cookie too large\nrequest_id: {rid}\n"
    assert rejected.headers["connection"] == "close"
    assert "x-edge-demo" not in rejected.headers  # the demo plugin never ran
    assert json_rejected.status_code == 400
    assert json_rejected.json()["message"] == "Request header or cookie too large"
    assert len(upstream.requests) == before + 1
