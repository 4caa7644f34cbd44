"""Accounts under real concurrency, against the real PostgreSQL.

How the concurrency is made real: SQLite serialises writers and ignores
``SELECT … FOR UPDATE``, and a ``django_db`` test runs inside one transaction on one
connection, so neither can show a race. Here the ``postgres_default`` fixture creates a
throw-away database on the server of ``postgres_url``, points Django's ``default`` alias
at it (not wrapped in a test transaction), and migrates it. Django connections are
per-thread, so every worker thread below opens its own PostgreSQL connection and runs its
own transactions in autocommit mode, exactly as gunicorn threads would; a barrier releases
them together. The requests go through the full stack (``django.test.Client`` → URL → view
→ service), so what is asserted is what clients would see.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from accounts_support import (
    API,
    PASSWORD,
    T0,
    last_mailed_token,
    make_user,
    totp_code,
)
from concurrency_support import race as shared_race
from django.core import mail
from django.test import Client
from django.utils import timezone

from auth_backend.accounts import totp
from auth_backend.accounts.models import LoginChallenge, OneTimeToken, User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType

pytestmark = pytest.mark.postgres

THREADS = 8
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def race(request: Callable[[Client, int], Any], count: int = THREADS) -> list[Any]:
    """Run ``request(client, i)`` in ``count`` threads released at once; their responses."""
    results = shared_race(lambda index: request(Client(), index), count)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(API + path, body, content_type="application/json")


def outcomes(responses: list[Any]) -> list[tuple[int, str]]:
    """Sorted ``(status, error code or "")`` of each response."""
    return sorted(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else "")
        for r in responses
    )


def test_concurrent_duplicate_registrations_leave_exactly_one_user(postgres_default):
    # Case variants of one address, all normalised to the same row.
    variants = ["racer@example.com", "Racer@example.com", "RACER@EXAMPLE.COM"]

    responses = race(
        lambda client, i: post(
            client, "register", {"email": variants[i % len(variants)], "password": PASSWORD}
        )
    )

    assert outcomes(responses) == [(202, "")] * THREADS  # the same answer for every one
    assert User.objects.count() == 1
    user = User.objects.get()
    assert user.email == "racer@example.com"
    assert OneTimeToken.objects.filter(user=user).count() == 1
    assert OutboxEvent.objects.filter(event_type=EventType.USER_REGISTERED).count() == 1
    # One verification email, and one "someone tried to register" notice (once a minute).
    subjects = sorted(message.subject for message in mail.outbox)
    assert subjects == [
        "Someone tried to register with your email address",
        "Verify your email address",
    ]
    assert {tuple(message.to) for message in mail.outbox} == {("racer@example.com",)}


def test_a_verification_token_used_concurrently_verifies_once(postgres_default):
    post(Client(), "register", {"email": "racer@example.com", "password": PASSWORD})
    token = last_mailed_token("verification")

    responses = race(lambda client, i: post(client, "verify-email", {"token": token}))

    assert outcomes(responses) == [(200, "")] + [(400, "invalid_token")] * (THREADS - 1)
    assert OutboxEvent.objects.filter(event_type=EventType.EMAIL_VERIFIED).count() == 1
    assert User.objects.get().email_verified


def test_concurrent_resends_send_one_email(postgres_default):
    make_user("pending@example.com", verified=False)

    responses = race(
        lambda client, i: post(client, "resend-verification", {"email": "pending@example.com"})
    )

    assert outcomes(responses) == [(202, "")] * THREADS
    assert len(mail.outbox) == 1
    assert OneTimeToken.objects.count() == 1


@pytest.fixture
def frozen_totp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(totp, "now", lambda: T0)


def _challenge(client: Client) -> str:
    response = post(client, "login", {"email": "alice@example.com", "password": PASSWORD})
    return response.json()["challenge_token"]


def test_one_totp_code_raced_over_many_challenges_signs_in_once(postgres_default, frozen_totp):
    make_user(totp_secret=SECRET, totp_enabled=True)
    challenges = [_challenge(Client()) for _ in range(THREADS)]
    code = totp_code(SECRET, T0)

    responses = race(
        lambda client, i: post(
            client, "login/2fa", {"challenge_token": challenges[i], "code": code}
        )
    )

    assert outcomes(responses) == [(200, "")] + [(401, "invalid_code")] * (THREADS - 1)
    assert OutboxEvent.objects.filter(event_type=EventType.LOGIN_SUCCEEDED).count() == 1


def test_wrong_codes_raced_on_one_challenge_stop_at_the_limit(postgres_default, frozen_totp):
    make_user(totp_secret=SECRET, totp_enabled=True)
    token = _challenge(Client())
    wrong = "000000" if totp_code(SECRET, T0) != "000000" else "111111"

    responses = race(
        lambda client, i: post(client, "login/2fa", {"challenge_token": token, "code": wrong}),
        count=THREADS + 4,
    )

    assert outcomes(responses) == (
        [(401, "challenge_expired")] * (THREADS + 4 - 5) + [(401, "invalid_code")] * 5
    )
    assert LoginChallenge.objects.get().failed_attempts == 5


def test_an_expired_token_cannot_win_a_race(postgres_default):
    user = make_user("late@example.com", verified=False)
    post(Client(), "resend-verification", {"email": user.email})
    token = last_mailed_token("verification")
    OneTimeToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    responses = race(lambda client, i: post(client, "verify-email", {"token": token}), count=4)

    assert outcomes(responses) == [(400, "invalid_token")] * 4
