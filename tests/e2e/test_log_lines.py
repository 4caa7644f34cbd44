"""One request, followed through the logs: the plugin servers' JSON lines (as Kong relays
them) and Kong's access log (kong/kong.conf's format, written by the harness) name the same
request and trace, and no token the requests carried is in any of them.

Real plugin servers (edge-trace, edge-jwt by their console scripts) behind the harness, a
real JWKS endpoint and upstream. A token whose ``kid`` the JWKS lacks makes edge-jwt log
inside the request ("unknown kid ...: refetching"), the line whose ids are checked.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_plugins.jwt.assertion import generate_signing_key
from kong_harness.conf import parse_conf_text
from tests.support.edge_jwt import (
    JwksEndpoint,
    jwks_of,
    kong_conf,
    mint,
    new_rsa_key,
    serve_jwks,
)
from tests.support.harness import shipped_plugins_runner, start_upstream

REPO = Path(__file__).resolve().parents[2]
LOG_FORMAT = parse_conf_text((REPO / "kong/kong.conf").read_text())["nginx_http_log_format"]
_RELAYED = re.compile(r"^\[(?P<server>[\w-]+):\d+\] (?P<line>.*)$")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def relayed() -> Iterator[_Capture]:
    """What the harness relays of the plugin servers' output, as Kong's grab_logs does."""
    capture = _Capture()
    logger = logging.getLogger("kong_harness.plugin_server")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)


def test_plugin_and_access_lines_name_the_request_and_carry_no_token(
    tmp_path: Path, relayed: _Capture
) -> None:
    issuer_key, stranger_key = new_rsa_key(), new_rsa_key()
    endpoint = JwksEndpoint(document=jwks_of(issuer_key))
    jwks_server = serve_jwks(endpoint)
    endpoint.url = f"http://127.0.0.1:{jwks_server.server_address[1]}/jwks.json"
    upstream, upstream_server = start_upstream()
    generate_signing_key(tmp_path / "gateway.pem", tmp_path / "gateway-jwks.json")
    jwt_config = kong_conf(tmp_path / "gateway.pem", jwks_uri=endpoint.url)
    kong_yml = json.dumps(
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "echo",
                    "url": f"http://127.0.0.1:{upstream.port}",
                    "routes": [{"name": "r", "paths": ["/t"]}],
                }
            ],
            "plugins": [
                {"name": "edge-trace"},
                {"name": "edge-jwt", "route": "r", "config": jwt_config},
            ],
        }
    )
    now = int(time.time())
    fresh = {"iat": now, "nbf": now, "exp": now + 600}
    valid = mint(issuer_key, **fresh)
    unknown_kid = mint(stranger_key, kid="kid-the-jwks-lacks", **fresh)
    forged = valid.rsplit(".", 1)[0] + "." + unknown_kid.rsplit(".", 1)[1]
    tokens = {"valid": valid, "unknown kid": unknown_kid, "forged": forged}
    runner = shipped_plugins_runner(
        kong_yml,
        ("edge-trace", "edge-jwt"),
        conf_lines=(
            f"nginx_http_log_format = {LOG_FORMAT}",
            "proxy_access_log = logs/proxy.log edge_json",
        ),
    )
    responses: dict[str, Any] = {}
    try:
        runner.start()
        with runner.client() as client:
            for name, token in tokens.items():
                responses[name] = client.get("/t", headers={"Authorization": f"Bearer {token}"})
            responses["query"] = client.get(f"/t?access_token={valid}")
        runner.drain_logs()
        access_text = (runner.dir / "logs/proxy.log").read_text()
    finally:
        runner.stop()
        upstream_server.shutdown()
        jwks_server.shutdown()

    assert responses["valid"].status_code == 200
    assert responses["unknown kid"].status_code == 401 and responses["forged"].status_code == 401
    # no token, nor any of its signatures, in any line
    everything = access_text + "\n".join(relayed.lines)
    for name, token in tokens.items():
        assert token not in everything and token.rsplit(".", 1)[1] not in everything, name

    access = {line["kong_request_id"]: line for line in map(json.loads, access_text.splitlines())}
    plugin_lines = [
        (m.group("server"), json.loads(m.group("line")))
        for m in map(_RELAYED.match, relayed.lines)
        if m and m.group("line").startswith("{")
    ]
    assert {server for server, _ in plugin_lines} >= {"edge-trace", "edge-jwt"}
    for server, line in plugin_lines:
        assert line["service"] == server and {"ts", "level", "message"} <= line.keys()
    (refetch,) = [
        line for server, line in plugin_lines if line["message"].startswith("unknown kid")
    ]
    response = responses["unknown kid"]
    entry = access[response.headers["X-Kong-Request-Id"]]
    assert refetch["request_id"] == response.headers["X-Request-ID"] == entry["request_id"]
    _, trace_id, span_id, _ = entry["traceparent"].split("-")
    assert (refetch["trace_id"], refetch["span_id"]) == (trace_id, span_id)
    assert entry["status"] == 401 and entry["path"] == "/t"
