"""The outbox relay: publish committed outbox rows to the ``auth.events`` Redis Stream.

Delivery is **at least once**. Each batch runs in one database transaction that locks its
rows (``SELECT … FOR UPDATE SKIP LOCKED``, so several relays share the work without
publishing the same row concurrently), ``XADD``s every event, then sets ``published_at``
and commits. A crash, a lost connection or a failed commit after an ``XADD`` leaves the row
unpublished, and the next round publishes it again: consumers de-duplicate on ``event_id``.
See ``backend/docs/events.md``.

Tracing: a batch that found events is one ``events.relay`` span (stream, batch size, published
and failed counts) over its ``XADD`` and ``UPDATE`` spans. The poll that finds nothing — every
``EVENTS_RELAY_INTERVAL_MS`` while idle — records nothing, so an idle relay leaves no traces.

Order: rows are taken oldest first (``occurred_at``). An event that fails to publish stays
behind while later ones in the batch go on, so the stream order is the order of
*publication*; consumers that care about order compare ``occurred_at``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.typing import EncodableT, FieldT

from auth_backend.core import tracing
from auth_backend.events.models import OutboxEvent
from auth_backend.events.selectors import unpublished_events

logger = logging.getLogger(__name__)

STREAM_FIELDS = ("event_id", "event_type", "subject_id", "occurred_at", "payload")
_USE_SETTING: Any = object()


@dataclass
class BatchResult:
    """What one batch did: ids published, ids that failed, and whether Redis went away."""

    published: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    connection_lost: bool = False


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: sortable as text, parseable anywhere."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def stream_fields(event: OutboxEvent) -> dict[str, str]:
    """The stream entry of ``event`` (all values are strings; ``payload`` is JSON)."""
    return {
        "event_id": str(event.id),
        "event_type": event.event_type,
        "subject_id": event.subject_id,
        "occurred_at": format_timestamp(event.occurred_at),
        "payload": json.dumps(
            event.payload, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")
        ),
    }


def relay_batch(
    client: redis.Redis,
    *,
    stream: str | None = None,
    batch_size: int = 100,
    maxlen: int | None = _USE_SETTING,
) -> int:
    """Publish up to ``batch_size`` unpublished events; return how many were published.

    ``stream`` defaults to ``settings.EVENTS_STREAM``; ``maxlen`` to
    ``settings.EVENTS_STREAM_MAXLEN`` (``None`` or ``0``: never trim). Failures are counted
    in ``attempts`` and the rows stay for the next round; they are never raised.
    """
    result = publish_batch(client, stream=stream, batch_size=batch_size, maxlen=maxlen)
    return len(result.published)


def publish_batch(
    client: redis.Redis,
    *,
    stream: str | None = None,
    batch_size: int = 100,
    maxlen: int | None = _USE_SETTING,
) -> BatchResult:
    """:func:`relay_batch` with the details the relay command needs to back off."""
    stream = stream or settings.EVENTS_STREAM
    if maxlen is _USE_SETTING:
        maxlen = settings.EVENTS_STREAM_MAXLEN
    trim_to = maxlen if maxlen and maxlen > 0 else None
    result = BatchResult()
    started = tracing.now_ns()

    with contextlib.ExitStack() as batch:
        # Idle polls leave no trace: neither the poll nor the transaction's BEGIN (SQLite
        # runs "BEGIN IMMEDIATE" as a statement when the block opens); the batch span
        # starts earlier, at ``started``.
        with tracing.suppressed():
            batch.enter_context(transaction.atomic())
            events = list(unpublished_events().select_for_update(skip_locked=True)[:batch_size])
        if events:
            with tracing.span(
                "events.relay",
                {
                    "messaging.system": "redis",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": stream,
                    "messaging.batch.message_count": len(events),
                },
                start_time=started,
            ) as span:
                _publish(client, events, stream, trim_to, result)
                span.set_attributes(
                    {
                        "events.published": len(result.published),
                        "events.failed": len(result.failed),
                        "events.connection_lost": result.connection_lost,
                    }
                )
    if result.published:
        logger.debug("published %d event(s) to %s", len(result.published), stream)
    return result


def _publish(
    client: redis.Redis,
    events: list[OutboxEvent],
    stream: str,
    trim_to: int | None,
    result: BatchResult,
) -> None:
    """``XADD`` each event, then record publication and failed attempts (caller's transaction)."""
    for event in events:
        try:
            # MAXLEN ~ N: Redis trims whole radix-tree nodes, cheap and never below N.
            # redis-py types the fields as a dict (invariant) of its encodable types; str is one.
            fields = cast("dict[FieldT, EncodableT]", stream_fields(event))
            client.xadd(stream, fields, maxlen=trim_to, approximate=True)
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis is unreachable: the rest of the batch would fail the same way, slowly.
            result.failed.append(event.id)
            result.connection_lost = True
            logger.warning(
                "event bus unreachable; event %s stays in the outbox",
                event.id,
                extra={"event_id": str(event.id), "attempts": event.attempts + 1},
            )
            break
        except redis.RedisError:
            result.failed.append(event.id)
            logger.warning(
                "could not publish event %s; it stays in the outbox",
                event.id,
                exc_info=True,
                extra={"event_id": str(event.id), "attempts": event.attempts + 1},
            )
            continue
        result.published.append(event.id)
    _mark_published(result.published, timezone.now())
    _count_failed_attempts(result.failed)


def _mark_published(event_ids: list[uuid.UUID], published_at: datetime) -> None:
    """Record publication (and the attempt); runs after the ``XADD``s, before commit."""
    if event_ids:
        OutboxEvent.objects.filter(pk__in=event_ids).update(
            published_at=published_at, attempts=F("attempts") + 1
        )


def _count_failed_attempts(event_ids: list[uuid.UUID]) -> None:
    if event_ids:
        OutboxEvent.objects.filter(pk__in=event_ids).update(attempts=F("attempts") + 1)
