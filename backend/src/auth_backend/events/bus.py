"""Redis connections for the event bus (the ``auth.events`` stream) and its health check."""

from __future__ import annotations

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_client(*, url: str | None = None, timeout_seconds: float) -> redis.Redis:
    """A Redis client whose every connect and command gives up after ``timeout_seconds``.

    redis-py retries failed commands by default, which would multiply the timeout; callers
    here decide themselves what to do on failure (the relay retries on its next round, a
    readiness probe reports), so there are no built-in retries.
    """
    return redis.Redis.from_url(
        url or settings.REDIS_URL,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
