"""Fixtures of the edge-jwt core tests: keys, signing key files, a JWKS server, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_plugins.jwt import state
from edge_plugins.jwt.assertion import AssertionSigner, generate_signing_key
from edge_plugins.jwt.cache import VerifiedTokenCache
from edge_plugins.jwt.key_manager import JwksManager
from edge_plugins.jwt.keys import static_keys
from tests.support.edge_jwt import (
    GATEWAY_ISSUER,
    JwksEndpoint,
    RsaKey,
    jwks_of,
    new_rsa_key,
    serve_jwks,
)
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require


@pytest.fixture(scope="session")
def rsa_key() -> RsaKey:
    return new_rsa_key()


@pytest.fixture(scope="session")
def other_rsa_key() -> RsaKey:
    return new_rsa_key()


@pytest.fixture(scope="session")
def gateway_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The gateway's Ed25519 assertion key pair: (private PEM, public JWKS)."""
    directory = tmp_path_factory.mktemp("gateway")
    private, public = directory / "assertion.pem", directory / "assertion.jwks.json"
    generate_signing_key(private, public)
    return private, public


@pytest.fixture
def key_file(gateway_key: tuple[Path, Path]) -> Path:
    return gateway_key[0]


@pytest.fixture
def signer(gateway_key: tuple[Path, Path]) -> AssertionSigner:
    return AssertionSigner(str(gateway_key[0]), issuer=GATEWAY_ISSUER, ttl_seconds=30)


@pytest.fixture
def static_manager(rsa_key: RsaKey) -> JwksManager:
    return JwksManager(static=static_keys(jwks_of(rsa_key)))


@pytest.fixture
def cache() -> VerifiedTokenCache:
    return VerifiedTokenCache()


@pytest.fixture
def jwks_endpoint(rsa_key: RsaKey) -> Iterator[JwksEndpoint]:
    """A real local JWKS endpoint on 127.0.0.1 serving ``rsa_key``."""
    endpoint = JwksEndpoint(document=jwks_of(rsa_key))
    server = serve_jwks(endpoint)
    yield endpoint
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh_runtimes() -> Iterator[None]:
    """No test sees another's process-wide runtimes or their background workers."""
    state.reset_runtimes()
    yield
    state.reset_runtimes()


@pytest.fixture(scope="session")
def _redis_probe() -> str | None:
    return redis_unavailable(REDIS_TEST_URL)


@pytest.fixture
def redis_url(_redis_probe: str | None) -> str:
    """The real Redis (db 15) for ``@pytest.mark.redis`` tests (skip locally, fail in CI)."""
    require(_redis_probe)
    return REDIS_TEST_URL
