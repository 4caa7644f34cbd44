"""The outbox relay (``manage.py relay_outbox``, backend/docs/events.md) killed in the middle
of a batch, then resumed, with Redis lost for a while on the way: every committed event
reaches the stream (nothing lost), and an event published twice — added by the killed relay,
never marked, added again by the next — carries the same ``event_id`` and fields both times.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
import redis

from tests.faults.stack import FaultStack, wait_until
from tests.support.harness import BIN_DIR, REPO
from tests.support.services import REDIS_TEST_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both


@pytest.fixture
def stream_reader() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2, decode_responses=True)
    yield client
    client.close()


def relay(stack: FaultStack) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN_DIR / "python"), "backend/manage.py", "relay_outbox", "--interval", "0.2"],
        cwd=REPO,
        env=stack.backend.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_relay_killed_mid_batch_then_resumed_loses_nothing(
    stack: FaultStack, stream_reader: redis.Redis
) -> None:
    stack.sign_up()  # three events, on top of what earlier tests recorded
    waiting = {row[0] for row in stack.sql("SELECT id::text FROM events_outboxevent")}
    assert len(waiting) >= 3
    stream_reader.delete(stack.stream)

    # Killed mid-batch: each XADD answered slowly, the process killed once some are in.
    with stack.redis.fault("delay", delay_ms=300):
        first = relay(stack)
        try:
            wait_until(lambda: stream_reader.xlen(stack.stream) >= 2, 30, "the relay published")
        finally:
            first.kill()
            first.wait(10)
    published = stack.sql("SELECT count(*) FROM events_outboxevent WHERE published_at IS NOT NULL")
    assert published == [(0,)]  # the batch never committed: every row still waits

    second = relay(stack)
    try:
        # Redis lost while the relay runs and more events are recorded: they wait.
        with stack.redis.fault("refuse"):
            late = stack.sign_up()
            time.sleep(0.5)
        rows = stack.sql("SELECT id::text FROM events_outboxevent WHERE subject_id = %s", late.id)
        assert len(rows) == 3
        events = waiting | {row[0] for row in rows}
        wait_until(
            lambda: (
                stack.sql("SELECT count(*) FROM events_outboxevent WHERE published_at IS NULL")
                == [(0,)]
            ),
            20,
            "the resumed relay did not publish the backlog",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0  # finishes its batch and exits cleanly

    entries: dict[str, list[dict[str, str]]] = defaultdict(list)
    for _, fields in stream_reader.xrange(stack.stream):
        entries[fields["event_id"]].append(fields)
    assert events <= set(entries)  # nothing lost
    duplicated = {event_id: copies for event_id, copies in entries.items() if len(copies) > 1}
    assert duplicated, "the killed relay's entries were not published again"
    for copies in duplicated.values():
        assert all(copy == copies[0] for copy in copies)
