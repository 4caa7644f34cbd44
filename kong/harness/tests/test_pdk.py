"""PDK semantics of the harness, call by call (kong/pdk/*.lua, plugin_servers/plugin.lua)."""

from __future__ import annotations

import json

import pytest

from kong_harness import pdk
from tests.support.harness import request_context

_ctx = request_context


def test_phase_check_message() -> None:
    """kong/pdk/private/phases.lua check_phase wording."""
    with pytest.raises(
        pdk.LuaError,
        match=r"function cannot be called in access phase "
        r"\(only in: log\)",
    ):
        pdk.call(_ctx(), "kong.log.serialize", [])
    with pytest.raises(pdk.LuaError, match=r"cannot be called in log phase"):
        pdk.call(_ctx(phase="log"), "kong.service.request.set_header", ["a", "b"])


def test_get_header_is_nginx_http_variable() -> None:
    """kong/tools/http.lua get_header: $http_<name> (case-insensitive, '-' and '_' alike,
    repeated lines joined by ', ', cookies by '; '); a value with ', ' is looked up again in
    ngx.req.get_headers(), whose key is the name asked with '_' read as '-' only."""
    ctx = _ctx(
        headers=[("X-User_Id", "a"), ("x-user-id", "b"), ("Cookie", "c=1"), ("Cookie", "d=2")]
    )
    # $http_x_user_id is "a, b"; get_headers()["x-user-id"] is the x-user-id line only
    assert pdk.call(ctx, "kong.request.get_header", ["X-USER-ID"]) == ("plugin.Step", "b")
    assert pdk.call(ctx, "kong.request.get_header", ["x-user_id"])[1] == "a"  # raw key hit
    assert pdk.call(ctx, "kong.request.get_header", ["cookie"])[1] == "c=1; d=2"  # no ", "
    assert pdk.call(ctx, "kong.request.get_header", ["missing"])[1] is None


def test_get_headers_truncates_at_100_by_default() -> None:
    """ngx.req.get_headers() returns at most 100 headers unless asked for more."""
    ctx = _ctx(headers=[(f"X-H{i}", str(i)) for i in range(120)])
    method, headers = pdk.call(ctx, "kong.request.get_headers", [])
    assert method == "plugin.StepMultiMap"
    assert len(headers) == 100 and "x-h100" not in headers
    assert len(pdk.call(ctx, "kong.request.get_headers", [200])[1]) == 120
    with pytest.raises(pdk.LuaError, match="max_headers must be <= 1000"):
        pdk.call(ctx, "kong.request.get_headers", [1001])


def test_service_request_headers_edit_the_request_in_place() -> None:
    """ngx.req.set_header replaces every same-named header; Host sets the upstream host;
    later kong.request.get_header calls see the change."""
    ctx = _ctx(headers=[("x-a", "1"), ("X-A", "2"), ("Host", "h")])
    pdk.call(ctx, "kong.service.request.set_headers", [{"X-A": "3", "Host": "up", "E": ""}])
    assert ctx.header_values("x-a") == ["3"]
    assert ctx.upstream_host == "up"
    assert pdk.call(ctx, "kong.request.get_header", ["x-a"])[1] == "3"
    assert ctx.header_values("e") == [" "]  # checks.lua normalize: "" becomes " "
    pdk.call(ctx, "kong.service.request.clear_header", ["X-A"])
    assert pdk.call(ctx, "kong.request.get_header", ["x-a"])[1] is None
    # An empty list clears too: ngx.req.set_header(name, {}) overrides with no value, the
    # same FFI call as clear_header (lua-resty-core resty/core/request.lua).
    ctx.headers += [("X-B", "1"), ("x_b", "2"), ("X-C", "3")]
    pdk.call(ctx, "kong.service.request.set_headers", [{"X-B": [], "x_b": []}])
    assert ctx.header_values("x-b") == ctx.header_values("x_b") == []
    assert ctx.header_values("x-c") == ["3"]
    with pytest.raises(pdk.LuaError, match='invalid header value for "x": got table'):
        pdk.call(ctx, "kong.service.request.set_header", ["x", {"a": 1}])


def test_exit_shapes_body_and_headers() -> None:
    ctx = _ctx()
    with pytest.raises(pdk.Terminated):
        pdk.call(ctx, "kong.response.exit", [403, {"message": "a/b"}, {"X-Z": ["1", "2"]}])
    assert ctx.exit is not None
    assert ctx.exit.body == b'{"message":"a\\/b"}'
    assert ("Content-Type", "application/json; charset=utf-8") in ctx.exit.headers
    assert [v for k, v in ctx.exit.headers if k == "X-Z"] == ["1", "2"]
    with pytest.raises(pdk.LuaError, match="code must be a number between 100 and 599"):
        pdk.call(_ctx(), "kong.response.exit", [600])


def test_error_negotiates_content_type_and_carries_request_id() -> None:
    """kong/pdk/response.lua error + kong/tools/http.lua templates."""
    ctx = _ctx(headers=[("Accept", "text/html;q=0.5, text/plain")])
    with pytest.raises(pdk.Terminated):
        pdk.call(ctx, "kong.response.error", [429])
    assert ctx.exit is not None
    assert ctx.exit.body == b"Too many requests\nrequest_id: " + b"0" * 32 + b"\n"
    json_ctx = _ctx()
    with pytest.raises(pdk.Terminated):
        pdk.call(json_ctx, "kong.response.error", [401, "Bad token"])
    assert json.loads(json_ctx.exit.body) == {"message": "Bad token", "request_id": "0" * 32}
    with pytest.raises(pdk.LuaError, match="between 400 and 599"):
        pdk.call(_ctx(), "kong.response.error", [302])


def test_client_ips_and_trust() -> None:
    """kong/pdk/client.lua: get_ip is the peer, get_forwarded_ip is $remote_addr."""
    ctx = _ctx(peer_ip="10.0.0.1", remote_addr="203.0.113.9")
    assert pdk.call(ctx, "kong.client.get_ip", [])[1] == "10.0.0.1"
    assert pdk.call(ctx, "kong.client.get_forwarded_ip", [])[1] == "203.0.113.9"
    assert pdk.call(ctx, "kong.ip.is_trusted", ["10.1.2.3"])[1] is True
    assert pdk.call(ctx, "kong.ip.is_trusted", ["11.0.0.1"])[1] is False


def test_unknown_method_answers_nil() -> None:
    """mp_rpc.lua call_pdk_method: an unknown method is logged and answers nil."""
    assert pdk.call(_ctx(), "kong.nope.nothing", []) == ("plugin.Step", None)


def test_ctx_shared_is_shared_between_calls() -> None:
    ctx = _ctx()
    pdk.call(ctx, "kong.ctx.shared.set", ["subject", "u1"])
    assert pdk.call(ctx, "kong.ctx.shared.get", ["subject"])[1] == "u1"


def test_get_var_upstream_uri_is_the_path_kong_proxies_to() -> None:
    """plugin.lua exposed_api kong.nginx.get_var is ngx.var[name]. $upstream_uri is the
    router's escaped path (handler.lua access.before), then set_path's (escaped, pdk
    service/request.lua); access.after appends the query once the plugins have run."""
    ctx = _ctx(raw_path="/edge/profile", raw_query="a=1", router_upstream_uri="/api/profile")
    assert pdk.call(ctx, "kong.nginx.get_var", ["upstream_uri"]) == ("plugin.Step", "/api/profile")
    assert pdk.call(ctx, "kong.nginx.get_var", ["request_method"])[1] == "GET"
    pdk.call(ctx, "kong.service.request.set_path", ["/v2/café"])
    assert pdk.call(ctx, "kong.nginx.get_var", ["upstream_uri"])[1] == "/v2/caf%C3%A9"
    ctx.phase = "response"
    assert pdk.call(ctx, "kong.nginx.get_var", ["upstream_uri"])[1] == "/v2/caf%C3%A9?a=1"
    assert pdk.call(_ctx(phase="rewrite"), "kong.nginx.get_var", ["upstream_uri"])[1] == ""
    assert pdk.call(ctx, "kong.nginx.get_var", ["ssl_cipher"])[1] is None  # not modelled
    with pytest.raises(pdk.LuaError):  # the log timer has no request
        pdk.call(_ctx(phase="log"), "kong.nginx.get_var", ["upstream_uri"])
