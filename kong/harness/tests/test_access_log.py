"""Kong's proxy access log as kong/kong.conf configures it, reproduced by the harness
(kong_harness/access_log.py after kong/templates/nginx_kong.lua and nginx's log module)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from kong_harness.access_log import (
    KONG_FORMAT,
    AccessLog,
    AccessLogConfigError,
    Entry,
    LogFormat,
)
from kong_harness.conf import load_kong_conf, parse_conf_text
from kong_harness.gateway import Gateway, GatewayConfigError, GatewaySettings
from tests.support.harness import header, request_context, shipped_plugins_runner, start_upstream

REPO = Path(__file__).resolve().parents[3]
REPO_CONF = parse_conf_text((REPO / "kong/kong.conf").read_text())
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _entry(**overrides: object) -> Entry:
    fields: dict[str, object] = {
        "method": "GET",
        "raw_path": "/api/auth/profile",
        "raw_query": "access_token=secret-in-query",
        "headers": [("User-Agent", 'curl "quoted"\n'), ("X-Request-ID", "rid-12345678")],
        "request_id": "a" * 32,
        "start_time": 100.0,
    }
    ctx = request_context(**{**fields, **overrides})
    return Entry(ctx, 200, 17, 100.25)


def test_the_repository_logs_json_lines_to_stdout() -> None:
    access_log = AccessLog.from_conf(REPO_CONF)
    assert access_log is not None and access_log.path == "/dev/stdout"
    assert access_log.stream_for("/nonexistent") is sys.stdout
    line = json.loads(access_log.line(_entry()))  # the escaping keeps it one JSON document
    assert line["service"] == "kong" and line["level"] == "INFO"
    assert line["message"] == "GET /api/auth/profile 200"
    assert line["request_id"] == "rid-12345678" and line["kong_request_id"] == "a" * 32
    assert line["traceparent"] == ""  # not sent: nginx writes nothing with escape=json
    assert (line["status"], line["bytes"], line["duration_s"]) == (200, 17, 0.25)
    assert line["user_agent"] == 'curl "quoted"\n'
    assert "secret-in-query" not in access_log.line(_entry())  # $uri: no query string


def test_kongs_own_format_when_no_format_is_named() -> None:
    """kong/templates/nginx_kong.lua's kong_log_format, nginx's default escaping."""
    access_log = AccessLog.from_conf({})
    assert access_log == AccessLog("logs/access.log", KONG_FORMAT)
    line = access_log.line(_entry())
    assert line.startswith("10.0.0.1 - - [")
    assert '"GET /api/auth/profile?access_token=secret-in-query HTTP/1.1" 200 17 "-"' in line
    assert '"curl \\x22quoted\\x22\\x0A"' in line
    assert line.endswith(f'kong_request_id: "{"a" * 32}"')
    assert AccessLog.from_conf({"proxy_access_log": "off"}) is None


@pytest.mark.parametrize(
    ("raw_path", "uri"),
    [("/a//b/./c/../d", "/a/b/d"), ("/a%20b/%2e%2e/c", "/c"), ("/a/b/", "/a/b/"), ("/a/..", "/")],
)
def test_uri_is_nginxs_normalised_path(raw_path: str, uri: str) -> None:
    log_format = LogFormat.parse("f '$uri'")
    assert log_format.render(_entry(raw_path=raw_path)) == uri


@pytest.mark.parametrize(
    ("conf", "error"),
    [
        ({"proxy_access_log": "/dev/stdout nope"}, 'unknown log format "nope"'),
        (
            {"proxy_access_log": "/dev/stdout f", "nginx_http_log_format": "f '$no_such_var'"},
            'unknown "no_such_var" variable',
        ),
        (
            {"proxy_access_log": "/dev/stdout f", "nginx_http_log_format": "f escape=xml '$uri'"},
            'unknown log format escaping "xml"',
        ),
    ],
)
def test_a_format_nginx_would_refuse_stops_the_gateway(
    conf: dict[str, str], error: str, tmp_path: Path
) -> None:
    with pytest.raises(AccessLogConfigError, match=error):
        AccessLog.from_conf(conf)
    (tmp_path / "kong.conf").write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
    settings = GatewaySettings(load_kong_conf(tmp_path / "kong.conf", env={}), tmp_path / "x.yml")
    with pytest.raises(GatewayConfigError, match=error):
        Gateway(settings)


def _lines_once_written(path: Path, count: int) -> str:
    """The log once it holds ``count`` lines: nginx, and the harness, write a request's line
    in the log phase, after the client has the response (up to 10 s of 50 ms polls)."""
    for _ in range(200):
        text = path.read_text() if path.exists() else ""
        if text.count("\n") >= count:
            break
        time.sleep(0.05)
    return text


def test_the_line_names_what_kong_sent_upstream() -> None:
    """edge-trace's request id and traceparent as the upstream received them, and Kong's
    own request id as the client got it: the repository's format, written by the harness
    for real requests (the path is a file here; kong.conf's is /dev/stdout)."""
    upstream, server = start_upstream()
    kong_yml = f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream.port}
        routes:
          - {{name: r, paths: [/t]}}
    plugins:
      - name: edge-trace
    """
    conf_lines = (
        f"nginx_http_log_format = {REPO_CONF['nginx_http_log_format']}",
        "proxy_access_log = logs/proxy.log edge_json",
    )
    runner = shipped_plugins_runner(kong_yml, ("edge-trace",), conf_lines=conf_lines)
    try:
        runner.start()
        with runner.client() as client:
            responses = [
                client.get("/t/one", headers={"traceparent": TRACEPARENT}),
                client.get("/t/two?token=abc", headers={"X-Request-ID": "client-chosen-id-1"}),
                client.get("/nowhere"),
            ]
        sent = list(upstream.requests)
        written = _lines_once_written(runner.dir / "logs/proxy.log", 3)
    finally:
        runner.stop()
        server.shutdown()
    lines = [json.loads(x) for x in written.splitlines()]
    assert [line["path"] for line in lines] == ["/t/one", "/t/two", "/nowhere"]
    for line, response in zip(lines, responses, strict=True):
        assert line["kong_request_id"] == response.headers["X-Kong-Request-Id"]
        assert line["status"] == response.status_code
    for line, request in zip(lines[:2], sent, strict=True):  # /nowhere: no upstream
        assert [line["request_id"]] == header(request, "X-Request-ID")
        assert [line["traceparent"]] == header(request, "traceparent")
    assert lines[1]["request_id"] == "client-chosen-id-1"
    assert lines[0]["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert lines[2]["status"] == 404 and lines[2]["request_id"] == ""  # no plugin ran
