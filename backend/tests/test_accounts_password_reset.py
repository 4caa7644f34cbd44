"""Password reset: same answer for any email, single-use 1 h token, sessions revoked."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
import redis
from accounts_support import (
    PASSWORD,
    error_code,
    events,
    field_errors,
    last_mailed_token,
    make_user,
    post,
    without_request_id,
)
from django.core import mail
from django.utils import timezone

from auth_backend.accounts.models import OneTimeToken, TokenPurpose, User
from auth_backend.events.services import EventType
from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-77"


def request_reset(client, email="alice@example.com", slash=""):
    return post(client, "password/reset" + slash, {"email": email})


def confirm(client, token, new_password=NEW_PASSWORD, slash=""):
    return post(
        client, "password/reset/confirm" + slash, {"token": token, "new_password": new_password}
    )


def login(client, email="alice@example.com", password=PASSWORD):
    return post(client, "login", {"email": email, "password": password})


@pytest.mark.parametrize("slash", ["", "/"])
def test_reset_answers_the_same_for_any_email(client, slash):
    make_user("alice@example.com")
    make_user("pending@example.com", verified=False)
    make_user("disabled@example.com", is_active=False)

    answers = [
        request_reset(client, email, slash)
        for email in (
            "nobody@example.com",
            "alice@example.com",
            "pending@example.com",
            "disabled@example.com",
        )
    ]

    assert {response.status_code for response in answers} == {202}
    bodies = [without_request_id(response) for response in answers]
    assert all(body == bodies[0] for body in bodies)
    assert sorted(message.to[0] for message in mail.outbox) == [
        "alice@example.com",
        "pending@example.com",
    ]


def test_the_reset_email_carries_a_hashed_one_hour_token(client):
    user = make_user()
    request_reset(client, "ALICE@example.com")

    token = last_mailed_token("reset", to="alice@example.com")
    row = OneTimeToken.objects.get(user=user, purpose=TokenPurpose.PASSWORD_RESET)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert abs((row.expires_at - row.created_at) - timedelta(hours=1)) < timedelta(seconds=1)
    lines = [
        line
        for line in mail.outbox[0].body.splitlines()
        if line.startswith("password reset token: ")
    ]
    assert lines == [f"password reset token: {token}"]


@pytest.mark.parametrize("slash", ["", "/"])
def test_confirm_sets_the_password_and_ends_every_session(client, slash):
    user = make_user()
    sessions = [issue_token_pair(user) for _ in range(2)]
    request_reset(client)

    response = confirm(client, last_mailed_token("reset"), slash=slash)

    assert response.status_code == 200
    assert "message" in response.json()
    assert error_code(login(client)) == "invalid_credentials"
    assert login(client, password=NEW_PASSWORD).status_code == 200
    for pair in sessions:
        refresh = post(client, "token/refresh", {"refresh_token": pair.refresh_token})
        assert refresh.status_code == 401
        assert error_code(refresh) == "invalid_refresh_token"
        with pytest.raises(InvalidAccessToken) as excinfo:
            validate_access_token(pair.access_token)
        assert excinfo.value.reason == "revoked"
    [event] = events(EventType.PASSWORD_RESET, user)
    assert event.subject_id == str(user.pk)


def test_a_reset_token_works_once(client):
    make_user()
    request_reset(client)
    token = last_mailed_token("reset")
    assert confirm(client, token).status_code == 200

    again = confirm(client, token, new_password="yet-another-passphrase-88")

    assert again.status_code == 400
    assert error_code(again) == "invalid_token"
    assert login(client, password=NEW_PASSWORD).status_code == 200
    assert len(events(EventType.PASSWORD_RESET)) == 1


def test_an_expired_reset_token_is_refused(client):
    make_user()
    request_reset(client)
    OneTimeToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = confirm(client, last_mailed_token("reset"))

    assert error_code(response) == "invalid_token"
    assert login(client).status_code == 200  # old password unchanged
    assert not events(EventType.PASSWORD_RESET)


def test_a_weak_new_password_is_refused_and_the_token_stays_usable(client):
    make_user()
    request_reset(client)
    token = last_mailed_token("reset")

    response = confirm(client, token, new_password="alice@example.com")

    assert response.status_code == 400
    assert field_errors(response)["password"]
    assert OneTimeToken.objects.get().used_at is None
    assert not events(EventType.PASSWORD_RESET)
    assert confirm(client, token).status_code == 200


def test_a_verification_token_does_not_reset_a_password(client):
    post(client, "register", {"email": "bob@example.com", "password": PASSWORD})

    response = confirm(client, last_mailed_token("verification"))

    assert error_code(response) == "invalid_token"


def test_a_reset_token_of_a_since_disabled_account_is_refused(client):
    user = make_user()
    request_reset(client)
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert error_code(confirm(client, last_mailed_token("reset"))) == "invalid_token"


def test_reset_verifies_the_email_of_an_unverified_account(client):
    """The token arrived by email: whoever uses it controls the mailbox. This also takes an
    address back from someone who pre-registered it with a password of their choosing."""
    user = make_user(verified=False)
    request_reset(client)

    assert confirm(client, last_mailed_token("reset")).status_code == 200

    user.refresh_from_db()
    assert user.email_verified
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_reset_emails_are_limited_to_one_per_minute_and_only_the_newest_works(client):
    make_user()
    request_reset(client)
    request_reset(client)
    assert len(mail.outbox) == 1
    first = last_mailed_token("reset")

    OneTimeToken.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    request_reset(client)
    assert len(mail.outbox) == 2
    second = last_mailed_token("reset")

    assert error_code(confirm(client, first)) == "invalid_token"
    assert confirm(client, second).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": "t"},
        {"new_password": NEW_PASSWORD},
        {"token": "t" * 129, "new_password": NEW_PASSWORD},
    ],
)
def test_malformed_confirm_requests_are_field_errors(client, body):
    response = post(client, "password/reset/confirm", body)

    assert response.status_code == 400
    assert field_errors(response)


@pytest.mark.redis
def test_reset_announces_the_revocation_to_the_edge(
    client, redis_url, settings, django_capture_on_commit_callbacks
):
    settings.REVOCATIONS_CHANNEL = f"test.accounts.revocations.{uuid.uuid4().hex}"
    settings.REVOCATIONS_KEY_PREFIX = f"test.accounts.revoked.{uuid.uuid4().hex}"
    user = make_user()
    pair = issue_token_pair(user)
    request_reset(client)
    subscriber = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = subscriber.pubsub()
    pubsub.subscribe(settings.REVOCATIONS_CHANNEL)
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        with django_capture_on_commit_callbacks(execute=True):
            assert confirm(client, last_mailed_token("reset")).status_code == 200
        message = None
        deadline = time.monotonic() + 3
        while message is None and time.monotonic() < deadline:
            raw = pubsub.get_message(timeout=0.5)
            if raw and raw["type"] == "message":
                message = json.loads(raw["data"])
        assert message is not None, "no revocation published"
        assert message["reason"] == "password_reset"
        assert message["sub"] == str(user.pk)
        assert message["not_before"] is not None
        jti = jwt.decode(pair.access_token, options={"verify_signature": False})["jti"]
        assert jti in message["jtis"]
    finally:
        pubsub.close()
        for key in subscriber.scan_iter(f"{settings.REVOCATIONS_KEY_PREFIX}:*"):
            subscriber.delete(key)
        subscriber.close()
