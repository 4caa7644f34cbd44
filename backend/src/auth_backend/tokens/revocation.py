"""Announcing revoked access tokens to the edge over Redis (backend/docs/revocation.md).

The database is the source of truth; Redis is a best-effort fan-out so the gateway can
reject revoked access tokens before they expire. Publishing therefore never fails the
operation that revoked them: errors are logged and swallowed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

MESSAGE_TYPE = "revoke"
MESSAGE_VERSION = 1


@dataclass(frozen=True)
class Revocation:
    """What the edge must stop accepting. Times are Unix epoch seconds."""

    sub: str
    reason: str
    jtis: tuple[str, ...] = ()
    exp: int | None = None  # latest ``exp`` among ``jtis``: the message is moot after it
    not_before: int | None = None  # reject every token of ``sub`` with ``iat < not_before``
    sids: tuple[str, ...] = field(default=())  # revoked refresh families (``sid`` claim)

    def as_message(self) -> dict[str, Any]:
        return {
            "type": MESSAGE_TYPE,
            "version": MESSAGE_VERSION,
            "reason": self.reason,
            "sub": self.sub,
            "sids": list(self.sids),
            "jtis": list(self.jtis),
            "exp": self.exp,
            "not_before": self.not_before,
            "issued_at": int(time.time()),
        }

    @property
    def is_empty(self) -> bool:
        return not self.jtis and self.not_before is None


_clients_lock = threading.Lock()
_clients: dict[tuple[str, int], redis.Redis] = {}


def _client() -> redis.Redis:
    url = settings.REDIS_URL
    timeout_ms = settings.REVOCATIONS_REDIS_TIMEOUT_MS
    with _clients_lock:
        client = _clients.get((url, timeout_ms))
        if client is None:
            timeout = max(timeout_ms, 1) / 1000
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                # A pooled connection Redis dropped (a restart, a failover) fails its next
                # command at once: try once more on a new connection, or the first requests
                # after an outage would still be refused. Timeouts are not retried: one
                # timeout is all a request may spend here.
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
            _clients[(url, timeout_ms)] = client
        return client


def redis_client() -> redis.Redis:
    """The client revocations go through (``REDIS_URL``, ``REVOCATIONS_REDIS_TIMEOUT_MS``);
    the backend's own identity checks read the keys with it (auth_backend.identity.store)."""
    return _client()


def revoked_jti_key(jti: str) -> str:
    """The key that marks access token ``jti`` revoked, for the edge and for this backend."""
    return f"{settings.REVOCATIONS_KEY_PREFIX}:jti:{jti}"


def publish(revocation: Revocation) -> bool:
    """Mirror the revocation into Redis keys and publish it; ``False`` (logged) on failure.

    Keys (``REVOCATIONS_KEY_PREFIX``, default ``auth.revoked``), each expiring when it stops
    mattering:

    * ``<prefix>:jti:<jti>`` = ``"1"`` until the token's ``exp``;
    * ``<prefix>:nbf:<sub>`` = ``not_before`` for ``ACCESS_TOKEN_TTL_SECONDS``.
    """
    if revocation.is_empty:
        return True
    prefix = settings.REVOCATIONS_KEY_PREFIX
    now = int(time.time())
    try:
        pipe = _client().pipeline(transaction=False)
        if revocation.jtis and revocation.exp is not None:
            ttl = max(revocation.exp - now, 1)
            for jti in revocation.jtis:
                pipe.set(revoked_jti_key(jti), "1", ex=ttl)
        if revocation.not_before is not None:
            pipe.set(
                f"{prefix}:nbf:{revocation.sub}",
                str(revocation.not_before),
                ex=max(settings.ACCESS_TOKEN_TTL_SECONDS, 1),
            )
        pipe.publish(
            settings.REVOCATIONS_CHANNEL, json.dumps(revocation.as_message(), separators=(",", ":"))
        )
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "revocation not published to Redis (database state still applies)",
            extra={
                "sub": revocation.sub,
                "reason": revocation.reason,
                "jti_count": len(revocation.jtis),
                "error": type(exc).__name__,
            },
        )
        return False
    log.info(
        "revocation published",
        extra={
            "sub": revocation.sub,
            "reason": revocation.reason,
            "jti_count": len(revocation.jtis),
        },
    )
    return True


def publish_on_commit(revocation: Revocation) -> None:
    """Publish once the current transaction commits (immediately outside one).

    After commit so the edge never hears of a revocation the database rolled back.
    """
    if revocation.is_empty:
        return
    transaction.on_commit(lambda: publish(revocation))
