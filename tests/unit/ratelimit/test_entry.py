"""The edge-rate-limit Kong entry with a recording PDK: which calls a request costs.

Every PDK call is one MessagePack-RPC round trip to Kong; the happy path makes two.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from edge_plugins import edge_rate_limit
from edge_plugins.guard import FailurePolicy
from tests.recording_kong import RecordingKong


def plugin(**config: Any) -> edge_rate_limit.Plugin:
    # A fresh route id per test: process-wide counters never leak between tests.
    base = {"limits": [{"limit": 2, "period": "minute"}], "route_id": str(uuid.uuid4())}
    return edge_rate_limit.Plugin({**base, **config})


def kong(**answers: Any) -> RecordingKong:
    return RecordingKong({"kong.client.get_forwarded_ip": "203.0.113.7",
                          "kong.router.get_route": {"id": "r", "name": "login"}, **answers})


def test_happy_path_is_two_round_trips_after_the_first_request() -> None:
    entry = plugin(limit_by="ip")
    first = kong()
    entry.access(first)
    assert first.methods == ["kong.client.get_forwarded_ip", "kong.router.get_route",
                             "kong.response.set_headers"], "route name looked up once"
    second = kong()
    entry.access(second)
    assert second.methods == ["kong.client.get_forwarded_ip", "kong.response.set_headers"]
    headers = second.calls[-1][1][0]
    assert headers["RateLimit-Remaining"] == "0"


def test_hidden_headers_make_it_one_round_trip() -> None:
    entry = plugin(limit_by="ip", hide_client_headers=True)
    entry.access(kong())
    call = kong()
    entry.access(call)
    assert call.methods == ["kong.client.get_forwarded_ip"]


@pytest.mark.parametrize(("limit_by", "extra", "read"), [
    ("consumer", {}, "kong.ctx.shared.get"),
    ("header", {"header_name": "X-Api-Key"}, "kong.request.get_header"),
    ("path", {}, "kong.request.get_path"),
    ("route", {}, "kong.router.get_route"),
    ("service", {}, "kong.router.get_service"),
])
def test_one_read_per_key_kind(limit_by: str, extra: dict[str, Any], read: str) -> None:
    entry = plugin(limit_by=limit_by, **extra)
    entry.access(kong(**{"kong.ctx.shared.get": "user-1", "kong.request.get_header": "k1",
                         "kong.request.get_path": "/p", "kong.router.get_service": {"id": "s"}}))
    call = kong(**{"kong.ctx.shared.get": "user-1", "kong.request.get_header": "k1",
                   "kong.request.get_path": "/p", "kong.router.get_service": {"id": "s"}})
    entry.access(call)
    assert call.methods == [read, "kong.response.set_headers"]


def test_anonymous_consumer_falls_back_to_the_client_ip() -> None:
    entry = plugin(limit_by="consumer")
    entry.access(kong())
    call = kong()
    entry.access(call)
    assert call.methods == ["kong.ctx.shared.get", "kong.client.get_forwarded_ip",
                            "kong.response.set_headers"]


def test_rejection_reads_the_request_id_and_exits_with_the_problem_body() -> None:
    entry = plugin(limit_by="ip")
    for _ in range(2):
        entry.access(kong())
    call = kong(**{"kong.request.get_header": "rid-123"})
    entry.access(call)
    assert call.methods == ["kong.client.get_forwarded_ip", "kong.request.get_header",
                            "kong.response.exit"]
    assert call.calls[1][1] == ("x-request-id",)
    status, body, headers = call.calls[-1][1]
    assert status == 429
    assert headers["Content-Type"] == "application/json" and "Retry-After" in headers
    assert json.loads(body)["request_id"] == "rid-123"


def test_refused_config_fails_closed_without_leaking_details() -> None:
    entry = plugin(limits=[{"limit": 5}])
    assert entry.failure_policy is FailurePolicy.CLOSED
    call = kong()
    entry.access(call)
    assert call.methods == ["kong.log.err", "kong.response.error"]
    assert call.calls[-1][1] == (500,)


def test_a_bug_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = plugin(limit_by="ip")
    assert entry.failure_policy is FailurePolicy.OPEN

    def broken(self: Any, client_key: str) -> None:
        raise RuntimeError("bug")

    from edge_plugins.ratelimit.enforcer import Enforcer

    monkeypatch.setattr(Enforcer, "decide", broken)
    call = kong()
    entry.access(call)
    assert call.methods[0] == "kong.client.get_forwarded_ip"
    assert not {"kong.response.error", "kong.response.exit"} & set(call.methods), "admitted"
