"""The edge-rate-limit Kong entry with a recording PDK: which calls a request costs.

Every PDK call is one MessagePack-RPC round trip to Kong; the happy path makes two.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from edge_plugins import edge_rate_limit
from edge_plugins.guard import FailurePolicy
from tests.support.recording_kong import RecordingKong


def plugin(**config: Any) -> edge_rate_limit.Plugin:
    # A fresh route id per test: process-wide counters never leak between tests.
    base = {"limits": [{"limit": 2, "period": "minute"}], "route_id": str(uuid.uuid4())}
    return edge_rate_limit.Plugin({**base, **config})


def kong(**answers: Any) -> RecordingKong:
    return RecordingKong(
        {
            "kong.client.get_forwarded_ip": "203.0.113.7",
            "kong.router.get_route": {"id": "r", "name": "login"},
            **answers,
        }
    )


def test_happy_path_is_two_round_trips_after_the_first_request() -> None:
    entry = plugin(limit_by="ip")
    first = kong()
    entry.access(first)
    assert first.methods == [
        "kong.client.get_forwarded_ip",
        "kong.router.get_route",
        "kong.response.set_headers",
    ], "route name looked up once"
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


@pytest.mark.parametrize(
    ("limit_by", "extra", "read"),
    [
        ("subject", {}, "kong.ctx.shared.get"),
        ("consumer", {}, "kong.ctx.shared.get"),
        ("header", {"header_name": "X-Api-Key"}, "kong.request.get_header"),
        ("path", {}, "kong.request.get_path"),
        ("route", {}, "kong.router.get_route"),
        ("service", {}, "kong.router.get_service"),
    ],
)
def test_one_read_per_key_kind(limit_by: str, extra: dict[str, Any], read: str) -> None:
    entry = plugin(limit_by=limit_by, **extra)
    entry.access(
        kong(
            **{
                "kong.ctx.shared.get": "user-1",
                "kong.request.get_header": "k1",
                "kong.request.get_path": "/p",
                "kong.router.get_service": {"id": "s"},
            }
        )
    )
    call = kong(
        **{
            "kong.ctx.shared.get": "user-1",
            "kong.request.get_header": "k1",
            "kong.request.get_path": "/p",
            "kong.router.get_service": {"id": "s"},
        }
    )
    entry.access(call)
    assert call.methods == [read, "kong.response.set_headers"]


def test_subject_and_its_deprecated_alias_count_in_the_same_counter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Switching a route from `consumer` to `subject` keeps its counters: the same key."""
    route = str(uuid.uuid4())
    with caplog.at_level(logging.WARNING, logger="edge_plugins.edge_rate_limit"):
        old = plugin(limit_by="consumer", route_id=route)
        new = plugin(limit_by="subject", route_id=route)
    deprecations = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert deprecations == [
        f"edge-rate-limit route:{route}: "
        "limit_by 'consumer' is deprecated, use 'subject' (same counters)"
    ]
    user = {"kong.ctx.shared.get": "user-1"}
    old.access(kong(**user))
    new.access(kong(**user))  # the limit is 2: the second request spends the last unit
    rejected = kong(**user, **{"kong.request.get_header": None})
    old.access(rejected)
    assert "kong.response.exit" in rejected.methods


def test_anonymous_subject_falls_back_to_the_client_ip() -> None:
    entry = plugin(limit_by="subject")
    entry.access(kong())
    call = kong()
    entry.access(call)
    assert call.methods == [
        "kong.ctx.shared.get",
        "kong.client.get_forwarded_ip",
        "kong.response.set_headers",
    ]


def test_rejection_reads_the_request_id_and_exits_with_the_problem_body() -> None:
    entry = plugin(limit_by="ip")
    for _ in range(2):
        entry.access(kong())
    call = kong(**{"kong.request.get_header": "rid-12345"})
    entry.access(call)
    assert call.methods == [
        "kong.client.get_forwarded_ip",
        "kong.request.get_header",
        "kong.response.exit",
    ]
    assert call.calls[1][1] == ("x-request-id",)
    status, body, headers = call.calls[-1][1]
    assert status == 429
    assert headers["Content-Type"] == "application/json" and "Retry-After" in headers
    assert json.loads(body)["request_id"] == "rid-12345"


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


class Broken(RuntimeError):
    pass


def _raise(*args: Any) -> None:
    raise Broken(f"PDK call failed: {args!r}")


class _UnreadableBody:
    """A problem body that cannot be copied (``dict(body)`` asks for its keys)."""

    def keys(self) -> list[str]:
        raise Broken("body")


def _break_json(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    def dumps(*args: Any, **kwargs: Any) -> str:
        raise Broken("json")

    monkeypatch.setattr(json, "dumps", dumps)
    return {}


def _break_body(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from edge_plugins.ratelimit.enforcer import Enforcer

    decide = Enforcer.decide

    def decide_with_a_broken_body(self: Enforcer, client_key: str) -> Any:
        verdict = decide(self, client_key)
        return dataclasses.replace(verdict, body=_UnreadableBody()) if verdict.body else verdict

    monkeypatch.setattr(Enforcer, "decide", decide_with_a_broken_body)
    return {}


def _rejected(entry: edge_rate_limit.Plugin, **answers: Any) -> RecordingKong:
    for _ in range(2):  # the limit is 2 a minute
        entry.access(kong())
    call = kong(**answers)
    entry.access(call)
    return call


def _assert_rejected_with_retry_after(call: RecordingKong, status: int = 429) -> None:
    method, args = call.calls[-1]
    assert method == "kong.response.error", f"let through: {call.methods}"
    assert args[0] == status
    assert int(args[2]["Retry-After"]) >= 1
    assert call.methods.count("kong.response.error") == 1


@pytest.mark.parametrize(
    "breaks",
    [
        lambda mp: {"kong.request.get_header": _raise},  # reading the request id
        _break_body,  # building the body
        _break_json,  # json encoding
        lambda mp: {"kong.response.exit": _raise},  # sending the 429
    ],
    ids=["request-id", "body", "json", "exit"],
)
def test_a_decided_rejection_is_answered_whatever_fails_after_the_decision(
    breaks: Callable[[pytest.MonkeyPatch], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin fails open on a bug in *deciding*; once the verdict is reject, a failure
    building or sending the 429 still ends the request as Kong's 429 with Retry-After."""
    entry = plugin(limit_by="ip")
    assert entry.failure_policy is FailurePolicy.OPEN
    call = _rejected(entry, **breaks(monkeypatch))
    _assert_rejected_with_retry_after(call)
    assert call.args("kong.response.error")[1] == "Too many requests"


def test_a_503_whose_answer_fails_is_still_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """on_store_failure: closed decides 503 (Kong's own body); the first error call
    failing is answered again, not let through."""
    from edge_plugins.ratelimit.enforcer import Enforcer, Verdict

    monkeypatch.setattr(
        Enforcer,
        "decide",
        lambda self, key: Verdict(503, "store_failure_closed", {"Retry-After": "5"}),
    )
    failures = iter([Broken("first error call")])

    def error(*args: Any) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    entry = plugin(limit_by="ip")
    call = kong(**{"kong.response.error": error})
    entry.access(call)
    answer = (
        "kong.response.error",
        (503, "The upstream server is currently unavailable", {"Retry-After": "5"}),
    )
    assert call.calls[-2:] == [answer, answer], "the failed answer is sent again"


@pytest.mark.parametrize(
    "request_id",
    [
        "\udcff",  # X-Request-ID: \xff as the plugin server decodes it
        "support-\udcff\udcfe",
        "abcdefgh\r\nSet-Cookie: a=b",
        "short",
        "x" * 300,
    ],
)
def test_a_malformed_request_id_is_not_echoed(request_id: str) -> None:
    """Without edge-trace on the route the header is the client's, as sent."""
    call = _rejected(plugin(limit_by="ip"), **{"kong.request.get_header": request_id})
    status, body, headers = call.calls[-1][1]
    assert (status, "Retry-After" in headers) == (429, True)
    assert "request_id" not in json.loads(body)
    body.encode("ascii")  # nothing of the header's bytes made it in


def test_addresses_of_one_ipv6_slash_64_share_a_counter() -> None:
    entry = plugin(limit_by="ip")  # limit 2 per minute
    entry.access(kong(**{"kong.client.get_forwarded_ip": "2001:db8:1:2::a"}))
    entry.access(kong(**{"kong.client.get_forwarded_ip": "2001:db8:1:2::b"}))
    third = kong(**{"kong.client.get_forwarded_ip": "2001:db8:1:2:ffff::c"})
    entry.access(third)
    assert third.methods[-1] == "kong.response.exit"
    other = kong(**{"kong.client.get_forwarded_ip": "2001:db8:1:3::a"})
    entry.access(other)
    assert other.methods[-1] == "kong.response.set_headers", "the next /64 is another client"


def test_an_ipv4_mapped_address_is_its_ipv4_client() -> None:
    entry = plugin(limit_by="ip", ipv6_prefix=128)
    entry.access(kong(**{"kong.client.get_forwarded_ip": "10.200.1.1"}))
    entry.access(kong(**{"kong.client.get_forwarded_ip": "::ffff:10.200.1.1"}))
    third = kong(**{"kong.client.get_forwarded_ip": "10.200.1.1"})
    entry.access(third)
    assert third.methods[-1] == "kong.response.exit"
