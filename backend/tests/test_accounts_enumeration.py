"""Account enumeration through response times (OWASP Authentication Cheat Sheet, account
enumeration; Forgot Password Cheat Sheet: "responses return in a consistent amount of time").

A response takes as long as the work done inside the request: the tests compare that work
(statements, queued jobs, nothing sent in-request) for addresses with and without an
account. The others run the real background worker (``ACCOUNT_BACKGROUND_MODE=thread``), so
the database is committed (``transaction=True``): the worker's own connection must see the
accounts.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from accounts_support import make_user, post
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from auth_backend.accounts import background

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(settings):
    settings.ACCOUNT_BACKGROUND_MODE = "thread"
    settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS = 0
    yield
    assert background.wait_idle(), "the background worker did not finish its jobs"


def _shape(sql: str) -> str:
    """A statement without its literal values: the same query for another address."""
    return _NUMBER.sub("?", _QUOTED.sub("?", sql))


_QUOTED = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"\b\d+\b")


@pytest.mark.parametrize(
    ("path", "verified"), [("password/reset", True), ("resend-verification", False)]
)
def test_existing_and_unknown_addresses_do_the_same_work_in_the_request(
    client, settings, monkeypatch, path, verified
):
    """What the response time is made of, compared instead of timed: for an address with an
    account and one without, the request runs the same statements and queues the same job,
    and neither sends anything itself -- the job does, off the request (the timing itself is
    measured in ``make bench``: a wall-clock bound here failed on a loaded machine)."""
    settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS = 0
    known = make_user("user@example.com", password=None, verified=verified).email
    queued: list[tuple[Any, tuple[Any, ...]]] = []
    monkeypatch.setattr(background, "submit", lambda func, *args: queued.append((func, args)))
    work: dict[str, tuple[list[str], list[str]]] = {}
    jobs: list[tuple[Any, tuple[Any, ...]]] = []
    for kind, email in (("existing", known), ("unknown", "nobody@example.com")):
        queued.clear()
        with CaptureQueriesContext(connection) as queries:
            response = post(client, path, {"email": email})
        assert response.status_code == 202, response.content
        assert mail.outbox == [], "an email was sent inside the request"
        work[kind] = (
            [_shape(query["sql"]) for query in queries.captured_queries],
            [func.__qualname__ for func, _ in queued],
        )
        jobs.extend(queued)
    assert work["existing"] == work["unknown"], work
    assert len(work["existing"][1]) == 1, work  # one job each
    for func, args in jobs:  # the jobs do the work: one email, to the existing address
        func(*args)
    assert [message.to[0] for message in mail.outbox] == [known]


def test_register_sends_its_emails_from_the_worker(client, worker):
    make_user("taken@example.com")

    for email in ("taken@example.com", "new@example.com"):
        response = post(
            client, "register", {"email": email, "password": "correct-horse-battery-42"}
        )
        assert response.status_code == 202
        # One job at a time: the test database is one shared in-memory SQLite, whose table
        # locks refuse the worker's read while the next sign-up writes.
        assert background.wait_idle()

    assert sorted((m.to[0], m.subject) for m in mail.outbox) == [
        ("new@example.com", "Verify your email address"),
        ("taken@example.com", "Someone tried to register with your email address"),
    ]


def test_a_failing_job_is_logged_not_raised(client, worker, monkeypatch, caplog):
    def broken(email: str) -> None:
        raise RuntimeError("smtp exploded")

    monkeypatch.setattr("auth_backend.accounts.services.passwords.send_password_reset", broken)

    response = post(client, "password/reset", {"email": "someone@example.com"})

    assert response.status_code == 202
    assert background.wait_idle()
    assert "smtp exploded" not in response.content.decode()
    assert any(r.getMessage() == "account background job failed" for r in caplog.records)
