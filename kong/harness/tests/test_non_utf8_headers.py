"""Header values that are not UTF-8 must not knock the edge plugins out.

Kong hands a header's raw bytes to a plugin server as a MessagePack ``str``
(kong/runloop/plugin_servers/rpc/mp_rpc.lua packs Lua strings with lua-MessagePack, which
never checks them for UTF-8). kong-pdk 0.36 decodes every message strictly
(kong_pdk/listener.py): one ``X-Evil: \\xff\\xfe`` killed its connection handler, Kong
logged "no data" and proxied the request without the plugin (the plugin server fails open,
kong/runloop/plugin_servers/plugin.lua) — a spoofed ``X-User-Id`` then reached the backend
unstripped. ``edge_plugins.server`` makes kong-pdk decode such strings losslessly
(surrogate escapes) and encode them back to the same bytes.

nginx forwards header bytes as they came, both ways (kong/templates/nginx_kong.lua passes
the client's headers on with ``proxy_pass``, only the ``proxy_set_header`` ones replaced);
the harness does the same. Requests are written byte by byte with ``http.client`` (httpx
refuses non-ASCII header values). The gateway runs the repository's kong.yml (edge-trace,
edge-jwt, edge-rate-limit) in front of the real backend, plus a route to a recording
upstream and one to an upstream that echoes a header back.
"""

from __future__ import annotations

import ast
import http.client
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack
import pytest
import yaml

from tests.support.backend import Backend, User, repo_kong_yml, sign_up
from tests.support.harness import (
    HarnessRunner,
    Upstream,
    header,
    serve_in_thread,
    shipped_plugins_runner,
)

pytestmark = pytest.mark.gunicorn  # the real backend as a process: not in make test-fast
EVIL = b"\xff\xfe"  # not UTF-8: 0xFF never occurs in UTF-8
MIXED = b"caf\xe9 \x80ok"  # latin-1 text and a lone continuation byte
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
PROFILE = "/api/auth/profile"
LOGIN = "/api/auth/login"
LIVE = "/api/auth/health/live/"


# --- the plugin server's MessagePack set-up (edge_plugins.server) ---------------------------


class _Socket:
    """What kong_pdk.listener reads from and writes to: ``recv`` and ``send``."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data
        self.sent = b""

    def recv(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)


def test_kong_pdk_listener_decodes_and_reencodes_raw_header_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``str`` that is not UTF-8 (as Kong's mp_rpc.lua sends a header value) reaches the
    plugin surrogate-escaped, and what the plugin sends back carries the original bytes."""
    from kong_pdk import listener

    from edge_plugins.server import use_lossless_rpc_strings

    monkeypatch.setattr(listener, "msgpack", listener.msgpack)  # restored after the test
    use_lossless_rpc_strings()
    use_lossless_rpc_strings()  # idempotent
    # [0, 7, "plugin.Step", [{"x-evil": ["\xff\xfe"]}]] as lua-MessagePack writes it: the
    # header value a fixstr (0xa2) of two bytes that are not UTF-8.
    wire = b"\x94\x00\x07\xabplugin.Step\x91\x81\xa6x-evil\x91\xa2" + EVIL
    with pytest.raises(UnicodeDecodeError):  # kong-pdk's own decoding: the handler dies
        next(iter(msgpack.Unpacker(listener.WrapSocket(_Socket(wire)), strict_map_key=False)))

    unpacker = listener.msgpack.Unpacker(listener.WrapSocket(_Socket(wire)), strict_map_key=False)
    _, msgid, method, args = next(iter(unpacker))
    value = args[0]["x-evil"][0]
    assert (msgid, method, value) == (7, "plugin.Step", "\udcff\udcfe")

    out = _Socket()
    listener.write_response(out, msgid, {"x-evil": value, "x-user-id": "7"})
    assert b"\xa2" + EVIL in out.sent  # the same two bytes go back to Kong
    assert msgpack.unpackb(out.sent, raw=True) == [
        1,
        7,
        None,
        {b"x-evil": EVIL, b"x-user-id": b"7"},
    ]
    listener.write_error(out, 8, "bad \udcff")
    assert out.sent.endswith(b"\xa5bad \xff\xc0")

    # Only kong_pdk.listener's view changed: the msgpack module itself is strict as before.
    assert listener.msgpack is not msgpack
    with pytest.raises(UnicodeDecodeError):
        msgpack.unpackb(b"\xa2" + EVIL)
    # The defaults cover every msgpack function listener.py calls; a kong-pdk that calls
    # another one would bypass them: fail here first.
    tree = ast.parse(Path(listener.__file__).read_text())
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "msgpack"
    }
    assert used == {"Unpacker", "packb"}


# --- the plugins' cores with surrogate-escaped values ----------------------------------------


def test_a_request_id_that_is_not_utf8_is_replaced_whatever_the_pattern() -> None:
    from edge_plugins.trace.request_id import RequestIdPolicy, decide_request_id

    permissive = RequestIdPolicy(header="X-Request-ID", pattern=re.compile(r".{8,128}"))
    raw = "support-" + EVIL.decode("utf-8", "surrogateescape")
    decision = decide_request_id(permissive, [raw])
    assert decision.outcome == "replaced_invalid" and UUID4.fullmatch(decision.value)
    assert decide_request_id(permissive, ["support-ünïcødé"]).accepted  # UTF-8 is fine


def test_a_span_with_non_utf8_header_values_still_encodes() -> None:
    """kong.log.serialize carries header bytes as they came (kong/pdk/log.lua); OTLP strings
    must be UTF-8, so the bytes that are not become U+FFFD instead of failing the batch."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from edge_plugins.trace.otlp import encode_spans
    from edge_plugins.trace.span import GatewaySpan

    escaped = MIXED.decode("utf-8", "surrogateescape")
    span = GatewaySpan(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id=None,
        name="GET /x" + escaped,
        start_ns=1,
        end_ns=2,
        trace_flags=1,
        trace_state="",
        attributes={
            "user_agent.original": escaped,
            "url.path": "/\udcff",
            "http.request.header.x-evil": [escaped, "ok"],
        },
    )
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans([span], "kong-edge"))
    (sent,) = request.resource_spans[0].scope_spans[0].spans
    attributes = {kv.key: kv.value for kv in sent.attributes}
    assert attributes["user_agent.original"].string_value == "caf\ufffd \ufffdok"
    assert attributes["url.path"].string_value == "/\ufffd"
    assert [
        v.string_value for v in attributes["http.request.header.x-evil"].array_value.values
    ] == ["caf\ufffd \ufffdok", "ok"]
    assert sent.name == "GET /xcaf\ufffd \ufffdok"


# --- through the harness --------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, bytes]]  # the bytes as sent
    body: bytes

    def header(self, name: str) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    port: int, method: str, path: str, headers: list[tuple[str, bytes | str]], body: bytes = b""
) -> RawResponse:
    """One request with header values written as the given bytes (httpx would refuse)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        # http.client reads header lines as latin-1: encoding back gives the wire bytes.
        raw = [(k, v.encode("latin-1")) for k, v in response.getheaders()]
        return RawResponse(response.status, raw, response.read())
    finally:
        conn.close()


def start_echo_upstream() -> ThreadingHTTPServer:
    """Answers every request with its ``X-Evil`` header's bytes in ``X-Echo``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            value = self.headers.get("X-Evil", "")  # latin-1: one char per byte
            self.send_response(200)
            self.send_header("X-Echo", value)  # written back as latin-1: the same bytes
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    return serve_in_thread(Handler)


@dataclass
class Edge:
    runner: HarnessRunner
    user: User

    def request(
        self, method: str, path: str, headers: list[tuple[str, bytes | str]], body: bytes = b""
    ) -> RawResponse:
        return raw_request(self.runner.port, method, path, headers, body)


@pytest.fixture(scope="module")
def edge(backend: Backend, upstream: Upstream) -> Iterator[Edge]:
    echo = start_echo_upstream()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("EDGE_RATE_LIMIT_REDIS_URL", raising=False)  # local counters
        patch.delenv("EDGE_TRACE_OTLP_ENDPOINT", raising=False)
        doc = repo_kong_yml(backend, plugins=("edge-trace", "edge-jwt", "edge-rate-limit"))
        optional = next(
            p["config"]
            for p in doc["plugins"]
            if p["name"] == "edge-jwt" and p.get("route") == "auth-public"
        )
        doc["services"] += [
            {
                "name": "recorder",
                "url": f"http://127.0.0.1:{upstream.port}",
                "routes": [{"name": "rec", "paths": ["/rec"]}],
            },
            {
                "name": "echo",
                "url": f"http://127.0.0.1:{echo.server_address[1]}",
                "routes": [{"name": "echo", "paths": ["/echo"]}],
            },
        ]
        doc["plugins"] += [
            {"name": "edge-jwt", "route": "rec", "config": optional},
            {"name": "edge-jwt", "route": "echo", "config": optional},
        ]
        runner = shipped_plugins_runner(
            yaml.safe_dump(doc, sort_keys=False), ("edge-trace", "edge-jwt", "edge-rate-limit")
        ).start()
        try:
            with runner.client() as client:
                user = sign_up(client, backend)
            yield Edge(runner, user)
        finally:
            runner.stop()
            echo.shutdown()


def assert_traced(response: RawResponse) -> str:
    """edge-trace ran: a fresh request id and the W3C trace context on the response."""
    (request_id,) = response.header("X-Request-ID")
    assert UUID4.fullmatch(request_id.decode()), request_id
    (traceresponse,) = response.header("traceresponse")
    assert re.fullmatch(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]", traceresponse)
    return request_id.decode()


def test_protected_route_without_token_is_refused_by_edge_jwt(edge: Edge) -> None:
    """Kong: the plugin server answers (lossless RPC), so edge-jwt's 401 stands; before, it
    failed open (mp_rpc.lua "no data") and the spoofed identity went to the backend."""
    response = edge.request("GET", PROFILE, [("X-User-Id", str(uuid.uuid4())), ("X-Evil", EVIL)])
    assert response.status == 401, response.body
    assert response.header("Content-Type") == [b"application/json; charset=utf-8"]
    body = response.json()
    assert set(body) == {"message", "request_id"}, body  # Kong's error, not the backend's
    assert [body["request_id"].encode()] == response.header("X-Kong-Request-Id")
    assert response.header("WWW-Authenticate") == [b'Bearer realm="api"']
    assert_traced(response)


def test_valid_token_reaches_the_backend_as_the_real_user(edge: Edge, upstream: Upstream) -> None:
    spoofed = str(uuid.uuid4())
    headers: list[tuple[str, bytes | str]] = [
        ("Authorization", f"Bearer {edge.user.access_token}"),
        ("X-User-Id", spoofed),
        ("X-User_Id", spoofed),
        ("X-Evil", EVIL),
    ]
    response = edge.request("GET", PROFILE, headers)
    assert response.status == 200, response.body
    assert response.json()["id"] == edge.user.id != spoofed
    assert_traced(response)

    # What reached the upstream: edge-jwt's identity only, the raw header untouched.
    assert edge.request("GET", "/rec/who", headers).status == 200
    record = upstream.last
    assert header(record, "X-User-Id") == [edge.user.id]
    assert header(record, "X-User_Id") == []
    assert [v.encode("latin-1") for v in header(record, "X-Evil")] == [EVIL]


def test_login_with_non_utf8_header_counts_toward_its_limit(edge: Edge) -> None:
    """Logins are limited to 5 a minute per client IP (kong.yml); all six carry the header,
    from one address (``X-Real-IP`` from a trusted peer, as nginx's realip module)."""
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    body = json.dumps({"email": edge.user.email, "password": "wrong"}).encode()
    answers = [
        edge.request(
            "POST",
            LOGIN,
            [("X-Real-IP", address), ("X-Evil", EVIL), ("Content-Type", "application/json")],
            body,
        )
        for _ in range(6)
    ]
    assert [r.status for r in answers] == [401] * 5 + [429], [r.body for r in answers]
    assert [r.header("RateLimit-Remaining") for r in answers[:5]] == [
        [b"4"],
        [b"3"],
        [b"2"],
        [b"1"],
        [b"0"],
    ]
    refused = answers[5]
    assert refused.json()["violated-policies"] == ["minute"]
    # edge-trace ran first on it too: its request id is echoed and named in the body.
    assert refused.json()["request_id"] == assert_traced(refused)


def test_public_route_is_traced_and_the_bytes_reach_the_upstream(
    edge: Edge, upstream: Upstream
) -> None:
    response = edge.request("GET", LIVE, [("X-Evil", EVIL), ("User-Agent", MIXED)])
    assert response.status == 200, response.body
    assert response.json() == {"status": "ok"}
    assert_traced(response)

    # A request id that is not UTF-8 is replaced, never echoed.
    sent_id = b"support-" + EVIL
    response = edge.request(
        "GET", "/rec/bytes", [("X-Evil", EVIL), ("X-Mixed", MIXED), ("X-Request-ID", sent_id)]
    )
    assert response.status == 200, response.body
    request_id = assert_traced(response)
    record = upstream.last
    assert [v.encode("latin-1") for v in header(record, "X-Evil")] == [EVIL]
    assert [v.encode("latin-1") for v in header(record, "X-Mixed")] == [MIXED]
    assert header(record, "X-Request-ID") == [request_id]
    assert header(record, "traceparent"), "edge-trace's context reached the upstream"


def test_upstream_response_header_bytes_reach_the_client(edge: Edge) -> None:
    response = edge.request("GET", "/echo", [("X-Evil", MIXED)])
    assert response.status == 200, response.body
    assert response.header("X-Echo") == [MIXED]
    assert_traced(response)
