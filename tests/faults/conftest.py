"""One stack under faults for the whole fault suite (tests/faults/stack.py).

It needs the real PostgreSQL and Redis: without them the suite skips locally with a one-line
reason and fails under ``CI=true`` (tests/support/services.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.faults.stack import FaultStack, fault_stack
from tests.support.services import REDIS_TEST_URL, postgres_probe, redis_unavailable, require


@pytest.fixture(scope="package")  # torn down before the rest of `make test` goes on
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    require(redis_unavailable(REDIS_TEST_URL))
    admin_url, why = postgres_probe()
    if admin_url is None:
        require(f"PostgreSQL not reachable at localhost:5432 (db 'test'): {why}")
    assert admin_url is not None
    with fault_stack(tmp_path_factory.mktemp("faults"), admin_url) as running:
        yield running
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2)
        client.delete(running.stream)
        client.close()


@pytest.fixture(autouse=True)
def _faults_cleared(stack: FaultStack) -> Iterator[None]:
    """Every proxy passes traffic again after each test, whatever the test did."""
    yield
    for proxy in (stack.postgres, stack.redis, stack.jwks, stack.otlp):
        proxy.set_mode("pass")
