"""The repository's rate limits (kong/kong.yml) through the harness and the real backend.

Which limit applies to which endpoint is read from the loaded configuration; that the
limits hold is shown with real sign-ups and logins: edge-jwt hands the user's subject to
edge-rate-limit, so per-user routes count per user, and anonymous routes count per IP.
Without EDGE_RATE_LIMIT_REDIS_URL (the env-vault reference in kong.yml resolves to
nothing) the plugin counts in its own process: the mode `make run` uses without Redis.
edge-trace runs in front, as in kong.yml, so rejections carry its request id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from edge_plugins.ratelimit.config import RateLimitConfig
from edge_plugins.ratelimit.limits import Limit
from edge_plugins.ratelimit.schema import Policy
from kong_harness.gateway import Gateway
from tests.support.backend import Backend, User, bearer, repo_kong_yml, sign_up
from tests.support.harness import load_repo_gateway, shipped_plugins_runner

# The limits docs/plugins/README.md documents (edge-rate-limit), endpoint by endpoint:
# (limit, period, limit_by).
EXPECTED = {
    ("POST", "/api/auth/login"): (5, "minute", "ip"),
    ("POST", "/api/auth/register"): (3, "minute", "ip"),
    ("POST", "/api/auth/token/refresh"): (10, "minute", "ip"),
    ("POST", "/api/auth/login/2fa"): (10, "minute", "ip"),
    ("GET", "/api/auth/profile"): (60, "minute", "subject"),
    ("POST", "/api/auth/2fa/setup"): (10, "minute", "subject"),
    ("POST", "/api/auth/2fa/enable"): (10, "minute", "subject"),
    ("POST", "/api/auth/2fa/recovery-codes"): (10, "minute", "subject"),
    ("POST", "/api/auth/seller/apply"): (2, "hour", "subject"),
    ("GET", "/api/auth/seller/status"): (20, "minute", "subject"),
    # The default, everywhere else.
    ("POST", "/api/auth/logout"): (120, "minute", "subject"),
    ("POST", "/api/auth/verify-email"): (120, "minute", "subject"),
    ("GET", "/api/auth/health/live/"): (120, "minute", "subject"),
    ("POST", "/api/auth/seller/applications/x/decision"): (120, "minute", "subject"),
}


@pytest.fixture(scope="module")
def repo_gateway(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Gateway:
    monkeypatch_module.delenv("EDGE_RATE_LIMIT_REDIS_URL", raising=False)
    return load_repo_gateway(tmp_path_factory.mktemp("prefix"))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def effective_limit(gateway: Gateway, method: str, path: str) -> RateLimitConfig:
    assert gateway.router is not None and gateway.config is not None
    match = gateway.router.match(method, "localhost", path, {}, server_port=8000)
    assert match is not None, f"{path} is not routed"
    plugins = [
        p
        for p in gateway.config.plugins_for(match.route, match.service)
        if p.name == "edge-rate-limit"
    ]
    assert len(plugins) == 1, f"{path}: exactly one edge-rate-limit config applies"
    return RateLimitConfig.from_kong(gateway.configured[plugins[0].id].conf)


@pytest.mark.parametrize(("method", "path"), list(EXPECTED))
def test_each_endpoint_has_its_limit(repo_gateway: Gateway, method: str, path: str) -> None:
    limit, period, limit_by = EXPECTED[(method, path)]
    config = effective_limit(repo_gateway, method, path)
    assert config.limits == (Limit.per(period, limit),)
    assert config.limit_by == limit_by
    assert config.algorithm == "sliding_window"
    # The env-vault reference resolved to nothing here: local counters, and it says so.
    assert config.policy is Policy.REDIS and config.redis is None
    assert config.describe_mode().startswith("policy local")


def test_the_redis_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGE_RATE_LIMIT_REDIS_URL", "redis://cache.internal:6379/3")
    gateway = load_repo_gateway(tmp_path)
    config = effective_limit(gateway, "POST", "/api/auth/login")
    assert config.redis is not None and config.redis.url == "redis://cache.internal:6379/3"
    assert config.describe_mode().startswith("policy redis at redis://cache.internal:6379/3")


@pytest.fixture(scope="module")
def limited_edge(
    backend: Backend, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    monkeypatch_module.delenv("EDGE_RATE_LIMIT_REDIS_URL", raising=False)
    monkeypatch_module.delenv("EDGE_TRACE_OTLP_ENDPOINT", raising=False)
    doc = repo_kong_yml(backend, plugins=("edge-trace", "edge-jwt", "edge-rate-limit"))
    runner = shipped_plugins_runner(
        yaml.safe_dump(doc, sort_keys=False), ("edge-trace", "edge-jwt", "edge-rate-limit")
    ).start()
    try:
        with runner.client() as client:
            yield client
    finally:
        runner.stop()


def test_login_register_and_profile_limits_hold_end_to_end(
    limited_edge: httpx.Client, backend: Backend
) -> None:
    client = limited_edge
    alice: User = sign_up(client, backend)  # 1 register, 1 login from this IP
    bob: User = sign_up(client, backend)  # 2 registers, 2 logins

    # Per user: each has a counter of 60 on the profile route.
    seen = [client.get("/api/auth/profile", headers=bearer(alice.access_token)) for _ in range(3)]
    assert [r.status_code for r in seen] == [200] * 3
    assert seen[-1].headers["RateLimit-Remaining"] == "57"
    assert seen[-1].headers["RateLimit-Policy"] == '"minute";q=60;w=60'
    first_bob = client.get("/api/auth/profile", headers=bearer(bob.access_token))
    assert first_bob.headers["RateLimit-Remaining"] == "59", "bob's counter is his own"

    # Per IP: the third registration in the minute is the last one admitted.
    third = client.post(
        "/api/auth/register", json={"email": "third@example.com", "password": "x" * 12}
    )
    assert third.status_code != 429 and third.headers["RateLimit-Remaining"] == "0"
    fourth = client.post(
        "/api/auth/register", json={"email": "fourth@example.com", "password": "x" * 12}
    )
    assert fourth.status_code == 429
    assert fourth.json()["violated-policies"] == ["minute"]
    # edge-trace (first on every request) gave it a request id: echoed and in the body.
    assert fourth.json()["request_id"] == fourth.headers["X-Request-ID"]
    assert third.headers["X-Request-ID"] != fourth.headers["X-Request-ID"]

    # Logins: two were used by the sign-ups; three more, then the sixth is refused.
    logins = [
        client.post("/api/auth/login", json={"email": alice.email, "password": "wrong"})
        for _ in range(4)
    ]
    assert [r.status_code for r in logins[:3]] == [401] * 3
    assert logins[3].status_code == 429
    assert 1 <= int(logins[3].headers["Retry-After"]) <= 60
    assert logins[3].headers["X-RateLimit-Remaining-Minute"] == "0"
    # A well-formed client request id is kept, on 401 (edge-jwt) and 429 alike.
    mine = client.post("/api/auth/login", headers={"X-Request-ID": "support-case-4711"}, json={})
    assert mine.status_code == 429 and mine.json()["request_id"] == "support-case-4711"
    anonymous = client.get("/api/auth/profile", headers={"X-Request-ID": "support-case-4712"})
    assert anonymous.status_code == 401
    assert anonymous.headers["X-Request-ID"] == "support-case-4712"
