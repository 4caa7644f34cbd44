"""The outbox relay against the real Redis: delivery, at-least-once, trimming, the command."""

from __future__ import annotations

import io
import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.core.management import CommandError, call_command
from django.utils import timezone

from auth_backend.events import relay
from auth_backend.events.bus import redis_client
from auth_backend.events.models import OutboxEvent
from auth_backend.events.relay import relay_batch
from auth_backend.events.services import EventType, record_event
from tests.support.services import closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def entries(redis_conn: redis.Redis, stream: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in redis_conn.xrange(stream)
    ]


def test_relay_publishes_committed_events_with_their_fields(redis_conn, stream):
    event = record_event(
        EventType.USER_REGISTERED, subject_id="user-1", email="a@example.com", nested={"n": 1}
    )

    assert relay_batch(redis_conn, stream=stream) == 1

    [entry] = entries(redis_conn, stream)
    assert set(entry) == {"event_id", "event_type", "subject_id", "occurred_at", "payload"}
    assert tuple(entry) == relay.STREAM_FIELDS
    assert entry["event_id"] == str(event.id)
    assert entry["event_type"] == "user.registered"
    assert entry["subject_id"] == "user-1"
    assert json.loads(entry["payload"]) == {"email": "a@example.com", "nested": {"n": 1}}
    occurred = datetime.fromisoformat(entry["occurred_at"].replace("Z", "+00:00"))
    assert occurred == event.occurred_at
    assert entry["occurred_at"].endswith("Z")
    event.refresh_from_db()
    assert event.published_at is not None
    assert event.attempts == 1


def test_a_second_run_publishes_nothing(redis_conn, stream):
    record_event(EventType.LOGIN_SUCCEEDED, subject_id="u")
    assert relay_batch(redis_conn, stream=stream) == 1

    assert relay_batch(redis_conn, stream=stream) == 0
    assert len(entries(redis_conn, stream)) == 1


def test_events_go_out_in_occurrence_order_in_batches(redis_conn, stream):
    base = timezone.now() - timedelta(minutes=5)
    ids = []
    for i in range(5):
        event = record_event(EventType.LOGIN_FAILED, subject_id=str(i))
        OutboxEvent.objects.filter(pk=event.pk).update(occurred_at=base - timedelta(seconds=i))
        ids.append(str(event.pk))

    assert relay_batch(redis_conn, stream=stream, batch_size=2) == 2
    assert relay_batch(redis_conn, stream=stream, batch_size=2) == 2
    assert relay_batch(redis_conn, stream=stream, batch_size=2) == 1

    assert [e["event_id"] for e in entries(redis_conn, stream)] == list(reversed(ids))


def test_the_stream_defaults_to_the_setting(redis_conn, stream):
    record_event(EventType.LOGGED_OUT, subject_id="u")

    assert relay_batch(redis_conn) == 1
    assert entries(redis_conn, stream)[0]["event_type"] == "user.logged_out"


def test_a_crash_between_xadd_and_mark_republishes_the_same_event_id(
    redis_conn, stream, monkeypatch
):
    event = record_event(EventType.PASSWORD_RESET, subject_id="u")

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemError("relay died after XADD")

    with monkeypatch.context() as patch:
        patch.setattr(relay, "_mark_published", crash)
        with pytest.raises(SystemError):
            relay_batch(redis_conn, stream=stream)

    event.refresh_from_db()
    assert event.published_at is None  # the mark was rolled back with the batch
    assert len(entries(redis_conn, stream)) == 1  # ...but the entry was already in the stream

    assert relay_batch(redis_conn, stream=stream) == 1

    published = entries(redis_conn, stream)
    assert [e["event_id"] for e in published] == [str(event.pk), str(event.pk)]
    event.refresh_from_db()
    assert event.published_at is not None
    assert relay_batch(redis_conn, stream=stream) == 0


def test_a_rejected_xadd_counts_an_attempt_and_the_batch_goes_on(redis_conn, stream):
    first = record_event(EventType.LOGIN_SUCCEEDED, subject_id="1")
    second = record_event(EventType.LOGIN_SUCCEEDED, subject_id="2")
    redis_conn.set(stream, "not a stream")  # every XADD now fails with WRONGTYPE

    assert relay_batch(redis_conn, stream=stream) == 0

    for event in (first, second):
        event.refresh_from_db()
        assert event.published_at is None
        assert event.attempts == 1

    redis_conn.delete(stream)
    assert relay_batch(redis_conn, stream=stream) == 2
    first.refresh_from_db()
    assert first.attempts == 2 and first.published_at is not None


def test_an_unreachable_redis_stops_the_batch_and_keeps_the_events(stream):
    first = record_event(EventType.LOGIN_SUCCEEDED, subject_id="1")
    second = record_event(EventType.LOGIN_SUCCEEDED, subject_id="2")
    down = redis_client(url=f"redis://127.0.0.1:{closed_port()}/15", timeout_seconds=0.5)

    assert relay_batch(down, stream=stream) == 0

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.attempts, second.attempts) == (1, 0)
    assert first.published_at is None and second.published_at is None


def test_maxlen_trims_the_stream_approximately(redis_conn, stream):
    OutboxEvent.objects.bulk_create(
        OutboxEvent(event_type=EventType.LOGIN_FAILED, subject_id=str(i)) for i in range(300)
    )

    assert relay_batch(redis_conn, stream=stream, batch_size=300, maxlen=10) == 300

    length = redis_conn.xlen(stream)
    assert 10 <= length < 300


def test_maxlen_zero_disables_trimming(redis_conn, stream):
    OutboxEvent.objects.bulk_create(
        OutboxEvent(event_type=EventType.LOGIN_FAILED, subject_id=str(i)) for i in range(300)
    )

    assert relay_batch(redis_conn, stream=stream, batch_size=300, maxlen=0) == 300
    assert redis_conn.xlen(stream) == 300


def test_occurred_at_is_rendered_in_utc(redis_conn, stream):
    event = record_event(EventType.EMAIL_VERIFIED, subject_id="u")
    OutboxEvent.objects.filter(pk=event.pk).update(
        occurred_at=datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    )

    relay_batch(redis_conn, stream=stream)

    assert entries(redis_conn, stream)[0]["occurred_at"] == "2025-03-01T12:30:15.123456Z"


# --- the relay_outbox command ------------------------------------------------------------------


def test_command_once_publishes_the_backlog(redis_conn, stream):
    for i in range(5):
        record_event(EventType.LOGIN_SUCCEEDED, subject_id=str(i))
    out = io.StringIO()

    call_command("relay_outbox", "--once", "--batch-size", "2", stdout=out)

    assert redis_conn.xlen(stream) == 5
    assert f"published 5 event(s) to {stream}" in out.getvalue()
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_command_once_fails_when_redis_is_down(settings, stream):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/15"
    record_event(EventType.LOGIN_SUCCEEDED, subject_id="u")

    with pytest.raises(CommandError, match="could not be published"):
        call_command("relay_outbox", "--once", stdout=io.StringIO())

    assert OutboxEvent.objects.get().published_at is None


def test_command_loop_stops_gracefully_on_sigterm(redis_conn, stream, monkeypatch):
    record_event(EventType.LOGIN_SUCCEEDED, subject_id="u")
    original = relay.publish_batch
    rounds: list[int] = []

    def publish_then_terminate(*args: object, **kwargs: object) -> relay.BatchResult:
        result = original(*args, **kwargs)
        rounds.append(len(result.published))
        os.kill(os.getpid(), signal.SIGTERM)  # as the orchestrator would, mid-loop
        return result

    from auth_backend.events.management.commands import relay_outbox

    monkeypatch.setattr(relay_outbox, "publish_batch", publish_then_terminate)
    handler_before = signal.getsignal(signal.SIGTERM)

    call_command("relay_outbox", "--interval", "30")  # returns instead of sleeping 30 s

    assert rounds == [1]
    assert redis_conn.xlen(stream) == 1
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_command_rejects_a_bad_interval(stream):
    with pytest.raises(CommandError):
        call_command("relay_outbox", "--once", "--interval", "0")
