"""docs/plugins/ is what the code says: regenerated pages match the committed ones, every
setting is described, and each plugin's declared PDK calls are what a request makes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_plugins import edge_jwt, edge_rate_limit, edge_trace, reference
from edge_plugins.kong_schema import Field
from edge_plugins.pdk_calls import PdkCalls
from kong_harness.schema import validate_plugin_schema
from tests.support.edge_jwt import jwks_of, kong_conf, mint, new_rsa_key
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.recording_kong import RecordingKong

REPO = Path(__file__).resolve().parents[2]
PLUGINS = (edge_trace, edge_jwt, edge_rate_limit)


@pytest.mark.parametrize("file_name", sorted(reference.documents()))
def test_committed_reference_is_current(file_name: str) -> None:
    committed = REPO / "docs" / "plugins" / file_name
    assert committed.is_file(), f"docs/plugins/{file_name} is missing: run make plugin-docs"
    assert committed.read_text(encoding="utf-8") == reference.documents()[file_name], (
        f"docs/plugins/{file_name} is stale: run make plugin-docs"
    )


def _all_fields(fields: tuple[Field, ...]) -> Iterator[Field]:
    for field in fields:
        yield field
        yield from _all_fields(field.fields)
        if field.elements is not None:
            yield from _all_fields(field.elements.fields)


@pytest.mark.parametrize("module", PLUGINS, ids=lambda m: m.NAME)
def test_every_setting_is_described_and_kong_accepts_the_schema(module: Any) -> None:
    for field in _all_fields(module.FIELDS.fields):
        # Kong's metaschema bounds a description to 10..500 characters (metaschema.lua).
        assert 10 <= len(field.description) <= 500, field.name
    validate_plugin_schema(
        {
            "name": module.NAME,
            "fields": [{"config": {"type": "record", "fields": list(module.Schema)}}],
        }
    )


def test_version_is_the_distribution_version() -> None:
    assert {module.version for module in PLUGINS} == {"0.1.0"}


# --- the declared PDK calls against a recording PDK -------------------------------------------

Scenario = Callable[[pytest.TempPathFactory], RecordingKong]
SCENARIOS: dict[tuple[str, str, str], Scenario] = {}


def scenario(plugin: Any, phase: str, outcome: str) -> Callable[[Scenario], Scenario]:
    def register(run: Scenario) -> Scenario:
        SCENARIOS[(plugin.NAME, phase, outcome)] = run
        return run

    return register


# edge-trace


def _trace_request(plugin: edge_trace.Plugin) -> RecordingKong:
    kong = RecordingKong(
        {
            "kong.request.get_headers": {"x-request-id": ["client-id-123"]},
            "kong.client.get_ip": "10.0.0.7",
        }
    )
    plugin.access(kong)
    return kong


@scenario(edge_trace, "access", "any request")
def _trace_any(_: pytest.TempPathFactory) -> RecordingKong:
    return _trace_request(edge_trace.Plugin({}))


@scenario(edge_trace, "access", "`request_id_trusted_ips` set")
def _trace_trusted(_: pytest.TempPathFactory) -> RecordingKong:
    return _trace_request(edge_trace.Plugin({"request_id_trusted_ips": ["10.0.0.0/8"]}))


@scenario(edge_trace, "log", "`otlp_endpoint` set, started with `--export-spans`")
def _trace_log_export(_: pytest.TempPathFactory) -> RecordingKong:
    with OtlpReceiver() as receiver:
        plugin = edge_trace.Plugin({"otlp_endpoint": receiver.endpoint})
        access = _trace_request(plugin)
        (upstream,) = access.args("kong.service.request.set_headers")
        serialized = {
            "request": {
                "method": "GET",
                "uri": "/p",
                "url": "http://gw/p",
                "headers": {name.lower(): value for name, value in upstream.items()},
            },
            "response": {"status": 200},
            "started_at": 1_700_000_000_000,
        }
        kong = RecordingKong({"kong.log.serialize": json.dumps(serialized)})
        plugin.log(kong)
        receiver.wait_for(lambda spans: len(spans) == 1)
    return kong


@scenario(edge_trace, "log", "no `otlp_endpoint`")
def _trace_log_quiet(_: pytest.TempPathFactory) -> RecordingKong:
    kong = RecordingKong()
    edge_trace.Plugin({}).log(kong)
    return kong


# edge-jwt

_ISSUER_KEY = new_rsa_key()


def _jwt_plugin(tmp: pytest.TempPathFactory, **config: Any) -> edge_jwt.Plugin:
    from edge_plugins.jwt.assertion import generate_signing_key

    directory = tmp.mktemp("edge-jwt")
    generate_signing_key(directory / "gateway.pem", directory / "gateway-jwks.json")
    conf = kong_conf(directory / "gateway.pem", jwks=json.dumps(jwks_of(_ISSUER_KEY)), **config)
    return edge_jwt.Plugin(conf)


def _jwt_request(
    plugin: edge_jwt.Plugin,
    headers: dict[str, list[str]],
    query: str = "",
    upstream_uri: str = "/api/auth/profile",
) -> RecordingKong:
    kong = RecordingKong(
        {
            "kong.request.get_headers": headers,
            "kong.request.get_method": "GET",
            "kong.request.get_raw_query": query,
            "kong.nginx.get_var": lambda name: upstream_uri,
        }
    )
    plugin.access(kong)
    return kong


def _token() -> str:
    now = int(time.time())
    return mint(_ISSUER_KEY, iat=now, nbf=now, exp=now + 600, jti=str(uuid.uuid4()))


@scenario(edge_jwt, "access", "valid token")
def _jwt_valid(tmp: pytest.TempPathFactory) -> RecordingKong:
    return _jwt_request(_jwt_plugin(tmp), {"authorization": [f"Bearer {_token()}"]})


@scenario(edge_jwt, "access", "valid token, spoofed identity headers sent")
def _jwt_spoofed(tmp: pytest.TempPathFactory) -> RecordingKong:
    headers = {"authorization": [f"Bearer {_token()}"], "x-user-id": ["someone-else"]}
    return _jwt_request(_jwt_plugin(tmp), headers)


@scenario(edge_jwt, "access", "no token, `optional` on")
def _jwt_anonymous(tmp: pytest.TempPathFactory) -> RecordingKong:
    return _jwt_request(_jwt_plugin(tmp, optional=True), {"host": ["gw"]})


@scenario(edge_jwt, "access", "no token, `optional` on, encoded `/` or `\\` in the path (400)")
def _jwt_encoded_separator(tmp: pytest.TempPathFactory) -> RecordingKong:
    plugin = _jwt_plugin(tmp, optional=True)
    return _jwt_request(plugin, {"host": ["gw"]}, upstream_uri="/api/auth/login%2F2fa")


@scenario(edge_jwt, "access", "rejected (401, 403, 431, 503)")
def _jwt_rejected(tmp: pytest.TempPathFactory) -> RecordingKong:
    return _jwt_request(_jwt_plugin(tmp), {"authorization": ["Bearer not.a.token"]})


@scenario(edge_jwt, "access", "valid token, `query_param_names` set")
def _jwt_query(tmp: pytest.TempPathFactory) -> RecordingKong:
    plugin = _jwt_plugin(tmp, query_param_names=["access_token"])
    return _jwt_request(plugin, {"authorization": [f"Bearer {_token()}"]})


# edge-rate-limit


def _limiter(**config: Any) -> edge_rate_limit.Plugin:
    # A fresh route id each time: process-wide counters never leak between scenarios.
    base = {"limits": [{"limit": 1, "period": "minute"}], "limit_by": "ip"}
    return edge_rate_limit.Plugin({**base, "route_id": str(uuid.uuid4()), **config})


def _limit_request(plugin: edge_rate_limit.Plugin) -> RecordingKong:
    kong = RecordingKong(
        {"kong.client.get_forwarded_ip": "203.0.113.7", "kong.router.get_route": {"name": "r"}}
    )
    plugin.access(kong)
    return kong


def _second_request(plugin: edge_rate_limit.Plugin) -> RecordingKong:
    _limit_request(plugin)  # the first asks for the route's name
    return _limit_request(plugin)


@scenario(edge_rate_limit, "access", "admitted")
def _limit_admitted(_: pytest.TempPathFactory) -> RecordingKong:
    return _second_request(_limiter(limits=[{"limit": 5, "period": "minute"}]))


@scenario(edge_rate_limit, "access", "admitted, `hide_client_headers` or `shadow`")
def _limit_hidden(_: pytest.TempPathFactory) -> RecordingKong:
    return _second_request(
        _limiter(hide_client_headers=True, limits=[{"limit": 5, "period": "minute"}])
    )


@scenario(edge_rate_limit, "access", "admitted, first request of its route in this process")
def _limit_first(_: pytest.TempPathFactory) -> RecordingKong:
    return _limit_request(_limiter())


@scenario(edge_rate_limit, "access", "admitted, `limit_by: subject` and anonymous")
def _limit_anonymous(_: pytest.TempPathFactory) -> RecordingKong:
    return _second_request(_limiter(limit_by="subject", limits=[{"limit": 5, "period": "minute"}]))


@scenario(edge_rate_limit, "access", "rejected (429)")
def _limit_rejected(_: pytest.TempPathFactory) -> RecordingKong:
    return _second_request(_limiter())


@scenario(edge_rate_limit, "access", "Redis down, `on_store_failure: closed` (503)")
def _limit_store_down(_: pytest.TempPathFactory) -> RecordingKong:
    # Port 1 on loopback: nothing listens, so every Redis call fails at once.
    redis = {"url": "redis://127.0.0.1:1/0", "timeout_ms": 50}
    return _second_request(_limiter(policy="redis", redis=redis, on_store_failure="closed"))


def _declared() -> list[tuple[str, PdkCalls]]:
    return [(module.NAME, calls) for module in PLUGINS for calls in module.PDK_CALLS]


def test_every_declared_figure_has_a_scenario() -> None:
    assert {(name, calls.phase, calls.outcome) for name, calls in _declared()} == set(SCENARIOS)


@pytest.mark.parametrize(
    ("plugin_name", "calls"), _declared(), ids=lambda v: v if isinstance(v, str) else v.outcome
)
def test_declared_pdk_calls_are_what_a_request_makes(
    plugin_name: str, calls: PdkCalls, tmp_path_factory: pytest.TempPathFactory
) -> None:
    kong = SCENARIOS[(plugin_name, calls.phase, calls.outcome)](tmp_path_factory)
    assert kong.methods == list(calls.calls)
