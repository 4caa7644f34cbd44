"""Plugin-server log lines (edge_plugins.logs): JSON in the backend's shape, naming the
event being handled with ids the plugins already read (no extra PDK call), never a token."""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_plugins import edge_jwt, edge_rate_limit, edge_trace, logs
from edge_plugins.trace.traceparent import parse_traceparent
from tests.support.recording_kong import RecordingKong

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REQUEST_ID = "3f0c1d2e-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW5vdC1sb2dnZWQ"


@contextlib.contextmanager
def _lines(service: str) -> Iterator[list[dict[str, Any]]]:
    """Every record logged meanwhile, as the JSON object a plugin server writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(service))
    root = logging.getLogger()
    root.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def _say(message: str) -> None:
    logging.getLogger("edge_plugins.test").warning(message)


def test_edge_trace_lines_name_its_request_id_and_gateway_span() -> None:
    kong = RecordingKong({"kong.request.get_headers": {"traceparent": [TRACEPARENT]}})
    event = contextvars.Context()  # pdk_bridge runs each event in a fresh context
    event.run(edge_trace.Plugin({}).access, kong)
    with _lines("edge-trace") as lines:
        event.run(_say, "inside the event")
        _say("outside any event")
    (upstream,) = kong.args("kong.service.request.set_headers")
    sent = parse_traceparent(upstream["traceparent"])
    inside, outside = lines
    assert inside["service"] == "edge-trace" and inside["level"] == "WARNING"
    assert inside["message"] == "inside the event" and inside["ts"].endswith("Z")
    assert inside["request_id"] == upstream["X-Request-ID"]
    assert (inside["trace_id"], inside["span_id"]) == (sent.trace_id, sent.parent_id)
    assert sent.trace_id == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace
    assert not {"request_id", "trace_id", "span_id"} & outside.keys()
    # no PDK call was added for the ids
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.service.request.set_headers",
        "kong.response.set_headers",
    ]


def test_edge_jwt_lines_carry_the_ids_edge_trace_set_and_never_the_token() -> None:
    """edge-jwt reads the request headers edge-trace rewrote in place: its failure line
    (an unusable config: the guard logs it and answers 500) names the same request."""
    plugin = edge_jwt.Plugin({})  # a config the plugin cannot use
    assert plugin.config_error
    headers = {
        "authorization": [f"Bearer {TOKEN}"],
        "x-request-id": [REQUEST_ID],
        "traceparent": [TRACEPARENT],
    }
    kong = RecordingKong({"kong.request.get_headers": headers})
    with _lines("edge-jwt") as lines:
        contextvars.Context().run(plugin.access, kong)
    assert lines, "the guard logs the failure"
    for line in lines:
        assert line["service"] == "edge-jwt"
        assert line["request_id"] == REQUEST_ID
        assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert line["span_id"] == "b7ad6b7169203331"
        assert TOKEN not in json.dumps(line) and TOKEN.split(".")[2] not in json.dumps(line)
    assert kong.methods[0] == "kong.request.get_headers"
    assert kong.methods.count("kong.request.get_headers") == 1


def test_ids_bound_from_headers_are_read_once_and_only_when_a_line_is_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """edge-jwt binds the headers, not their ids: an event that logs nothing parses no
    ``traceparent``; one that logs twice parses it once."""
    reads: list[object] = []
    real = logs.ids_from_headers

    def counting(headers: Any, request_id_header: str = logs.DEFAULT_HEADER) -> logs.EventIds:
        reads.append(headers)
        return real(headers, request_id_header)

    monkeypatch.setattr(logs, "ids_from_headers", counting)
    headers = {"x-request-id": [REQUEST_ID], "traceparent": [TRACEPARENT]}
    contextvars.Context().run(logs.bind_headers, headers)
    assert reads == []

    def two_lines() -> None:
        logs.bind_headers(headers)
        _say("first")
        _say("second")

    with _lines("edge-jwt") as lines:
        contextvars.Context().run(two_lines)
    assert len(reads) == 1
    assert [(line["request_id"], line["span_id"]) for line in lines] == [
        (REQUEST_ID, "b7ad6b7169203331")
    ] * 2


@pytest.mark.parametrize(
    "request_id",
    [f"Bearer {TOKEN}", "a" * 200, "short", "id with spaces 123", "\udcff" * 10],
)
def test_a_request_id_header_that_is_no_id_is_not_logged(request_id: str) -> None:
    ids = logs.ids_from_headers({"x-request-id": [request_id], "traceparent": ["00-zz"]})
    assert ids == logs.EventIds(None, None, None)


def test_an_ambiguous_request_id_is_not_logged() -> None:
    ids = logs.ids_from_headers({"x-request-id": [REQUEST_ID, "another-id-1234"]})
    assert ids.request_id is None


def test_edge_rate_limit_names_a_rejected_request_from_the_header_it_reads() -> None:
    entry = edge_rate_limit.Plugin(
        {"limits": [{"limit": 1, "period": "minute"}], "route_id": "logs-test", "limit_by": "ip"}
    )
    answers = {
        "kong.client.get_forwarded_ip": "203.0.113.9",
        "kong.router.get_route": {"id": "r", "name": "login"},
        "kong.request.get_header": REQUEST_ID,
    }
    admitted, rejected = RecordingKong(answers), RecordingKong(answers)
    first, second = contextvars.Context(), contextvars.Context()
    first.run(entry.access, admitted)
    second.run(entry.access, rejected)
    assert "kong.request.get_header" not in admitted.methods  # admitted: nothing read
    assert first.run(logs.current_event) is None
    assert rejected.methods.count("kong.request.get_header") == 1
    assert second.run(logs.current_event) == logs.EventIds(request_id=REQUEST_ID)


def test_exception_lines_keep_their_type_and_traceback() -> None:
    with _lines("edge-jwt") as lines:
        try:
            raise KeyError("kid")
        except KeyError:
            logging.getLogger("edge_plugins.test").exception("key lookup failed")
    (line,) = lines
    assert line["exc_type"] == "builtins.KeyError" and "Traceback" in line["exc"]
    assert line["level"] == "ERROR" and line["logger"] == "edge_plugins.test"


@pytest.mark.parametrize("bridge", [[], ["--kong-pdk-bridge"]], ids=["ours", "kong-pdk"])
def test_a_started_server_writes_json_lines_on_stderr(tmp_path: Path, bridge: list[str]) -> None:
    """The real server (edge_plugins.server), on either bridge: its own start-up line is
    JSON on stderr, which Kong copies into its error log
    (kong/runloop/plugin_servers/process.lua); kong-pdk's plain-text logger included."""
    command = [sys.executable, "-m", "edge_plugins.edge_trace", "-p", str(tmp_path)]
    proc = subprocess.Popen(
        [*command, "--metrics-port", "0", *bridge],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # a server that never writes to stderr is killed, so the read ends with "" and fails
    killer = threading.Timer(30, proc.kill)
    killer.start()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
    finally:
        killer.cancel()
        proc.kill()
        proc.wait(timeout=10)
    entry = json.loads(line)
    assert entry["service"] == "edge-trace" and entry["level"] == "INFO", line
    assert "listening on" in entry["message"] or "started at path" in entry["message"]
    assert proc.stdout is not None and proc.stdout.read() == ""
