"""runtime_for: process-wide components shared by exactly the config fields they need."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prometheus_client import REGISTRY

from edge_plugins.jwt import state
from edge_plugins.jwt.revocation import NullRevocations, RedisRevocations
from tests.support.edge_jwt import JwksEndpoint, RsaKey, jwks_of, make_config


def test_same_config_same_runtime(key_file: Path, rsa_key: RsaKey) -> None:
    config = make_config(key_file, jwks=jwks_of(rsa_key))
    again = make_config(key_file, jwks=jwks_of(rsa_key))
    assert state.runtime_for(config) is state.runtime_for(again)


def test_route_policy_shares_everything(key_file: Path, rsa_key: RsaKey) -> None:
    public = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key), optional=True))
    staff = state.runtime_for(
        make_config(key_file, jwks=jwks_of(rsa_key), required_roles=["staff"])
    )
    assert public is staff


def test_validation_rules_get_their_own_cache_but_share_keys(
    key_file: Path, rsa_key: RsaKey
) -> None:
    a = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key), audiences=["a"]))
    b = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key), audiences=["b"]))
    assert a.cache is not b.cache
    assert a.keys is b.keys
    assert a.signer is b.signer


def test_key_sources_and_signers_are_separate(
    key_file: Path, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    a = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key)))
    b = state.runtime_for(make_config(key_file, jwks=jwks_of(other_rsa_key)))
    c = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key), assertion_ttl_seconds=10))
    assert a.keys is not b.keys
    assert a.signer is not c.signer and a.keys is c.keys


def test_revocations(key_file: Path, rsa_key: RsaKey) -> None:
    plain = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key)))
    assert isinstance(plain.revocations, NullRevocations)
    url = "redis://127.0.0.1:6379/15"
    a = state.runtime_for(make_config(key_file, jwks=jwks_of(rsa_key), revocation_redis_url=url))
    b = state.runtime_for(
        make_config(key_file, jwks=jwks_of(rsa_key), revocation_redis_url=url, audiences=["other"])
    )
    assert isinstance(a.revocations, RedisRevocations)
    assert a.revocations is b.revocations, "one subscription per process"


def _jwks_fetches() -> float:
    """JWKS fetches this process made, whatever their result (edge_jwt_jwks_fetches_total)."""
    return sum(
        REGISTRY.get_sample_value("edge_jwt_jwks_fetches_total", {"result": result}) or 0.0
        for result in ("ok", "error", "invalid")
    )


def test_nothing_starts_before_first_use(key_file: Path, rsa_key: RsaKey, tmp_path: Path) -> None:
    fetches = _jwks_fetches()
    before = {t.name for t in threading.enumerate()}
    state.runtime_for(
        make_config(
            key_file,
            jwks_uri="https://idp.invalid/jwks.json",
            revocation_redis_url="redis://127.0.0.1:1/0",
            assertion_signing_key_file=str(tmp_path / "not-there-yet.pem"),
        )
    )
    after = {t.name for t in threading.enumerate()}
    assert after == before, "no thread, no fetch, no file read at runtime_for"
    assert _jwks_fetches() == fetches


def test_concurrent_first_calls_build_one_runtime(key_file: Path, rsa_key: RsaKey) -> None:
    config = make_config(key_file, jwks=jwks_of(rsa_key))
    seen = []
    barrier = threading.Barrier(10)

    def get() -> None:
        barrier.wait()
        seen.append(state.runtime_for(config))

    threads = [threading.Thread(target=get) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(r) for r in seen}) == 1


def test_start_prefetches_in_the_background(key_file: Path, jwks_endpoint: JwksEndpoint) -> None:
    runtime = state.runtime_for(make_config(key_file, jwks_uri=jwks_endpoint.url))
    runtime.start()
    deadline = time.monotonic() + 3
    while jwks_endpoint.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jwks_endpoint.count() == 1
    assert runtime.signer.kid
