"""Concurrency against the real PostgreSQL: one pending application, one decision, and
relays that never publish a row twice at the same time.

SQLite serialises writers, so these races only mean something on PostgreSQL. The scenario
runs in a child process whose default database is a fresh PostgreSQL database (migrated from
scratch), so the service code runs unmodified with real row locks and constraints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]

SCENARIO = r'''
import json, sys, threading

import django

django.setup()
from django.core.management import call_command
from django.db import connections

call_command("migrate", verbosity=0)

import redis
from django.conf import settings

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.relay import relay_batch
from auth_backend.events.services import EventType
from auth_backend.sellers import services
from auth_backend.sellers.exceptions import SellerApplicationError
from auth_backend.sellers.models import SellerApplication


def race(n, action):
    """Run ``action(i)`` in n threads released together; the outcome code of each."""
    barrier = threading.Barrier(n)
    outcomes, lock = [], threading.Lock()

    def worker(i):
        try:
            barrier.wait()
            action(i)
            outcome = "ok"
        except SellerApplicationError as exc:
            outcome = exc.default_code
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


report = {}
applicant = User.objects.create_user("racer@example.com", totp_enabled=True)
report["apply"] = race(8, lambda i: services.submit_application(
    user=applicant, business_name=f"Shop {i}", seller_type="company",
    motivation="A motivation that is long enough."))
report["pending"] = SellerApplication.objects.filter(user=applicant, status="pending").count()

staff = [User.objects.create_user(f"staff{i}@example.com", is_staff=True) for i in range(2)]
application = SellerApplication.objects.get(user=applicant)
report["decide"] = race(2, lambda i: services.decide_application(
    application_id=application.pk, actor=staff[i], decision=("approve", "reject")[i]))
application.refresh_from_db()
report["transitions"] = application.transitions.count()
report["decision_events"] = OutboxEvent.objects.filter(event_type__in=[
    EventType.SELLER_APPLICATION_APPROVED, EventType.SELLER_APPLICATION_REJECTED]).count()
report["is_seller_matches"] = (User.objects.get(pk=applicant.pk).is_seller
                               == (application.status == "approved"))

OutboxEvent.objects.bulk_create(
    OutboxEvent(event_type=EventType.LOGIN_FAILED, subject_id=str(i)) for i in range(300))
client = redis.Redis.from_url(settings.REDIS_URL)
published = []


def relay(i):
    local = redis.Redis.from_url(settings.REDIS_URL)
    while (count := relay_batch(local, batch_size=20)):
        published.append(count)
    local.close()


race(4, relay)
ids = [fields[b"event_id"].decode() for _, fields in client.xrange(settings.EVENTS_STREAM)]
report["total"] = OutboxEvent.objects.count()
report["stream_entries"] = len(ids)
report["distinct_ids"] = len(set(ids))
report["published_counted"] = sum(published)
report["left"] = OutboxEvent.objects.filter(published_at__isnull=True).count()
client.close()

with open(sys.argv[1], "w") as fh:
    json.dump(report, fh)
'''


@pytest.fixture
def fresh_postgres(postgres_url: str):
    name = f"auth_conc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_applications_decisions_and_relays_under_concurrency(fresh_postgres, redis_url, tmp_path):
    stream = f"test.concurrency.{uuid.uuid4().hex}"
    out = tmp_path / "report.json"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "auth_backend.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DATABASE_URL": fresh_postgres,
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": redis_url,
        "EVENTS_STREAM": stream,
        "LOG_LEVEL": "ERROR",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", SCENARIO, str(out)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        redis.Redis.from_url(redis_url).delete(stream)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(out.read_text())

    assert report["apply"] == ["application_pending"] * 7 + ["ok"]
    assert report["pending"] == 1
    assert report["decide"] == ["already_decided", "ok"]
    assert report["transitions"] == 2
    assert report["decision_events"] == 1
    assert report["is_seller_matches"] is True
    # Four relays at once: every event out exactly once (SKIP LOCKED), none left behind.
    assert report["left"] == 0
    assert report["stream_entries"] == report["distinct_ids"] == report["published_counted"]
    assert report["stream_entries"] == report["total"]
