"""The real services some tests need (PostgreSQL, Redis), and what to do when one is missing.

Locally a missing service skips its tests with a one-line reason; in CI (``CI=true``) it
fails them, so a service that did not come up can never pass as silent skips.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"

# Where the PostgreSQL tests look for a server (trust auth, database "test").
POSTGRES_URLS = (
    "postgres://postgres@localhost:5432/test",
    "postgres://root@localhost:5432/test",
)


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


def postgres_probe() -> tuple[str | None, str]:
    """The first reachable URL of ``POSTGRES_URLS``, or ``None`` and why not."""
    import psycopg

    failures = []
    for url in POSTGRES_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            user = url.split("//", 1)[1].split("@", 1)[0]
            failures.append(f"user {user}: {first_line}")
        else:
            return url, ""
    return None, "; ".join(failures)


def closed_port() -> int:
    """A local TCP port nothing listens on (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
