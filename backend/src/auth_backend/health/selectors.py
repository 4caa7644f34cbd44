"""Read-only checks of the service's dependencies, for the readiness endpoint.

Each check is timed and bounded: the database by its connect timeout
(``DATABASE_CONNECT_TIMEOUT``), Redis and the event bus by ``HEALTH_CHECK_TIMEOUT_MS``
(at most 1 s) on connect and on every command, with no retries. Failures are logged
server-side; what a check reports is only ``ok``/``unavailable``, its latency and, for the
event bus, the age of the outbox backlog -- never an exception text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from auth_backend.events.bus import redis_client
from auth_backend.events.models import OutboxEvent

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one dependency check."""

    ok: bool
    latency_ms: float
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": OK if self.ok else UNAVAILABLE,
            "latency_ms": self.latency_ms,
            **self.info,
        }


def _timed(check: Callable[[], bool]) -> tuple[bool, float]:
    started = time.perf_counter()
    ok = check()
    return ok, round((time.perf_counter() - started) * 1000, 2)


def database_is_ready(*, alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether database ``alias`` answers ``SELECT 1``.

    A failure is logged (exception class and message stay server-side) and reported as
    ``False``; the connection is closed so the next check starts afresh instead of reusing a
    broken persistent connection.
    """
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
    except DatabaseError:
        logger.warning("Database %r is not ready", alias, exc_info=True)
        connection.close()
        return False
    return row is not None and row[0] == 1


def check_database(*, alias: str = DEFAULT_DB_ALIAS) -> CheckResult:
    ok, latency = _timed(lambda: database_is_ready(alias=alias))
    return CheckResult(ok, latency)


def redis_is_ready(client: redis.Redis) -> bool:
    """Whether Redis answers ``PING``."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        logger.warning("Redis is not ready", exc_info=True)
        return False


def check_redis(client: redis.Redis) -> CheckResult:
    ok, latency = _timed(lambda: redis_is_ready(client))
    return CheckResult(ok, latency)


def stream_is_writable(client: redis.Redis, stream: str) -> bool:
    """Whether an ``XADD`` to ``stream`` would be accepted -- without adding anything.

    * ``TYPE`` must be ``stream`` or ``none`` (another type would fail with WRONGTYPE);
    * ``MULTI`` / ``XADD`` / ``DISCARD``: Redis refuses a write command when it *queues*
      it if the server cannot take writes (a read-only replica, out of memory under
      ``noeviction``, an ACL without XADD on the key), and ``DISCARD`` then drops the
      queued command, so the stream never sees the probe.
    """
    try:
        key_type = client.type(stream)
        if key_type not in (b"stream", b"none", "stream", "none"):
            logger.warning("Event stream key %r holds a %r, not a stream", stream, key_type)
            return False
        connection = client.connection_pool.get_connection()
        try:
            connection.send_command("MULTI")
            connection.read_response()
            connection.send_command("XADD", stream, "*", "probe", "1")
            queued = connection.read_response()
        finally:
            try:
                connection.send_command("DISCARD")
                connection.read_response()
            except redis.RedisError:
                connection.disconnect()  # never hand back a connection inside MULTI
            client.connection_pool.release(connection)
    except redis.RedisError:
        logger.warning("Event stream %r is not writable", stream, exc_info=True)
        return False
    return queued in (b"QUEUED", "QUEUED")


def oldest_unpublished_age_seconds(*, alias: str = DEFAULT_DB_ALIAS) -> float | None:
    """Seconds since the oldest event still waiting in the outbox occurred; ``None`` if none
    waits or the outbox cannot be read (the database check reports the database itself).

    Raw SQL on the same connection the database check uses, served by the partial index.
    """
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = OutboxEvent._meta
    occurred_column = meta.get_field("occurred_at").column
    published_column = meta.get_field("published_at").column
    # Only a field without a database column (e.g. a reverse relation) has none.
    assert occurred_column is not None and published_column is not None
    occurred = quote(occurred_column)
    published = quote(published_column)
    sql = (
        f"SELECT {occurred} FROM {quote(meta.db_table)} "  # noqa: S608 - model identifiers
        f"WHERE {published} IS NULL ORDER BY {occurred} LIMIT 1"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
    except DatabaseError:
        logger.warning("Outbox backlog could not be read", exc_info=True)
        return None
    if row is None:
        return None
    oldest = row[0]
    if isinstance(oldest, str):
        oldest = parse_datetime(oldest)
    if not isinstance(oldest, datetime):
        return None
    if timezone.is_naive(oldest):
        oldest = oldest.replace(tzinfo=UTC)
    return round(max((timezone.now() - oldest).total_seconds(), 0.0), 3)


def check_event_bus(
    client: redis.Redis, *, stream: str, redis_ok: bool, database_ok: bool
) -> CheckResult:
    """The stream can take events; also reports how old the outbox backlog is.

    The backlog age is information for dashboards and alerts, not a readiness condition:
    a lagging relay is a separate process, and taking this service out of rotation would
    not help it catch up. Without Redis the stream check is not even tried (it would only
    wait for the same timeout again).
    """
    if redis_ok:
        ok, latency = _timed(lambda: stream_is_writable(client, stream))
    else:
        ok, latency = False, 0.0
    age = oldest_unpublished_age_seconds() if database_ok else None
    return CheckResult(ok, latency, {"oldest_unpublished_age_seconds": age})


def readiness_checks() -> dict[str, CheckResult]:
    """Run every readiness check: ``database``, ``redis`` and ``event_bus``."""
    database = check_database()
    timeout = settings.HEALTH_CHECK_TIMEOUT_MS / 1000
    client = redis_client(timeout_seconds=timeout)
    try:
        redis_check = check_redis(client)
        event_bus = check_event_bus(
            client, stream=settings.EVENTS_STREAM, redis_ok=redis_check.ok, database_ok=database.ok
        )
    finally:
        client.close()
    return {"database": database, "redis": redis_check, "event_bus": event_bus}
