"""The real services some tests need (PostgreSQL, Redis), and what to do when one is missing.

Locally a missing service skips its tests with a one-line reason; in CI (``CI=true``) it
fails them, so a service that did not come up can never pass as silent skips.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def require(unavailable: str | None) -> None:
    """Skip (locally) or fail (CI) when ``unavailable`` gives a reason."""
    if unavailable is None:
        return
    if running_in_ci():
        pytest.fail(f"CI=true and {unavailable}", pytrace=False)
    pytest.skip(unavailable)


def redis_unavailable(url: str = REDIS_TEST_URL) -> str | None:
    """Why Redis at ``url`` cannot be used, or None when it answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {url}: {type(exc).__name__}"
    finally:
        client.close()
    return None


def closed_port() -> int:
    """A local TCP port nothing listens on (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
