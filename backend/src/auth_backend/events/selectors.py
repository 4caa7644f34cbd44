"""Read-side queries on the outbox."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from auth_backend.events.models import OutboxEvent


def unpublished_events() -> QuerySet[OutboxEvent]:
    """Events the relay has not published yet, oldest first (served by the partial index)."""
    return OutboxEvent.objects.filter(published_at__isnull=True).order_by("occurred_at", "id")


def oldest_unpublished_occurred_at() -> datetime | None:
    return unpublished_events().values_list("occurred_at", flat=True).first()


def unpublished_event_count() -> int:
    """The relay's backlog (served by the partial index on unpublished rows)."""
    return OutboxEvent.objects.filter(published_at__isnull=True).count()
