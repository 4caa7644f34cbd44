"""The transactional outbox: an event exists exactly when the change that emitted it does."""

from __future__ import annotations

import pytest
from django.db import transaction

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.selectors import oldest_unpublished_occurred_at, unpublished_events
from auth_backend.events.services import EventType, record_event

# Real commits and rollbacks, not the test-case transaction.
pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def test_a_rolled_back_transaction_emits_nothing():
    with pytest.raises(Boom), transaction.atomic():
        User.objects.create_user("gone@example.com")
        record_event(EventType.USER_REGISTERED, subject_id="gone", email="gone@example.com")
        raise Boom

    assert OutboxEvent.objects.count() == 0
    assert not User.objects.filter(email="gone@example.com").exists()


def test_a_committed_transaction_emits_its_event_unpublished():
    with transaction.atomic():
        user = User.objects.create_user("kept@example.com")
        recorded = record_event(EventType.USER_REGISTERED, subject_id=user.pk, source="test")

    event = OutboxEvent.objects.get()
    assert event.pk == recorded.pk
    assert event.event_type == "user.registered"
    assert event.subject_id == str(user.pk)
    assert event.payload == {"source": "test"}
    assert event.published_at is None and event.attempts == 0


def test_a_rolled_back_savepoint_drops_only_its_own_event():
    with transaction.atomic():
        record_event(EventType.LOGIN_SUCCEEDED, subject_id="kept")
        with pytest.raises(Boom), transaction.atomic():
            record_event(EventType.LOGIN_FAILED, subject_id="dropped")
            raise Boom

    assert list(OutboxEvent.objects.values_list("subject_id", flat=True)) == ["kept"]


def test_unpublished_events_are_oldest_first():
    first = record_event(EventType.LOGIN_SUCCEEDED, subject_id="1")
    second = record_event(EventType.LOGIN_SUCCEEDED, subject_id="2")
    OutboxEvent.objects.filter(pk=first.pk).update(occurred_at=second.occurred_at)
    OutboxEvent.objects.filter(pk=second.pk).update(
        occurred_at=second.occurred_at.replace(year=second.occurred_at.year - 1)
    )

    assert unpublished_events().first().pk == second.pk
    assert oldest_unpublished_occurred_at() < first.occurred_at
