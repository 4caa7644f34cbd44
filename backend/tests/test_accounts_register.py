"""Registration, email verification and resending the verification email."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from accounts_support import (
    PASSWORD,
    error_code,
    events,
    field_errors,
    last_mailed_token,
    mailed_tokens,
    make_user,
    post,
    without_request_id,
)
from django.core import mail
from django.utils import timezone

from auth_backend.accounts.models import OneTimeToken, TokenPurpose, User
from auth_backend.accounts.services import one_time_tokens
from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType

pytestmark = pytest.mark.django_db


def register(client, email="New.User@Example.COM", password=PASSWORD, slash="", **extra):
    return post(client, "register" + slash, {"email": email, "password": password, **extra})


# --- register --------------------------------------------------------------------------------


@pytest.mark.argon2
@pytest.mark.parametrize("slash", ["", "/"])
def test_register_creates_an_unverified_account_and_mails_a_token(client, slash):
    response = register(client, slash=slash, first_name="New", last_name="User")

    assert response.status_code == 202
    assert set(response.json()) == {"message"}
    user = User.objects.get(email="new.user@example.com")
    assert (user.email, user.first_name, user.last_name) == ("new.user@example.com", "New", "User")
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password(PASSWORD)
    assert not user.email_verified

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.user@example.com"]
    token = last_mailed_token("verification")
    # Only the hash is stored; it expires in 24 h.
    row = OneTimeToken.objects.get(user=user)
    assert row.purpose == TokenPurpose.VERIFY_EMAIL
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash
    assert abs((row.expires_at - row.created_at) - timedelta(hours=24)) < timedelta(seconds=1)

    [event] = events(EventType.USER_REGISTERED)
    assert event.subject_id == str(user.pk)


def test_the_verification_email_has_one_greppable_token_line(client):
    register(client)
    lines = [
        line for line in mail.outbox[0].body.splitlines() if line.startswith("verification token: ")
    ]
    assert len(lines) == 1
    assert len(lines[0].split(": ", 1)[1]) >= 43


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short1!", "too short"),
        ("password1234", "too common"),
        ("84736251948372", "entirely numeric"),
        ("new.user@example.com", "too similar"),
    ],
)
def test_register_applies_the_django_password_validators(client, password, fragment):
    response = register(client, password=password)

    assert response.status_code == 400
    messages = field_errors(response)["password"]
    assert any(fragment in message for message in messages), messages
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert mail.outbox == []


def test_register_field_errors(client):
    response = post(client, "register", {"email": "not-an-email", "first_name": "x" * 151})

    assert response.status_code == 400
    fields = field_errors(response)
    assert set(fields) == {"email", "password", "first_name"}


@pytest.mark.parametrize("verified", [True, False])
@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.com", " taken@example.com"])
def test_a_taken_address_gets_the_same_answer_and_its_owner_a_notice(client, email, verified):
    """No 409: the answer must not tell which addresses are registered (OWASP Authentication
    Cheat Sheet, account enumeration). The owner learns of the attempt by email."""
    existing = make_user("taken@example.com", verified=verified)
    before = User.objects.values().get()

    taken = register(client, email=email, first_name="Mallory")
    new = register(client, email="someone.new@example.com")

    assert (taken.status_code, new.status_code) == (202, 202)
    assert without_request_id(taken) == without_request_id(new)
    after = User.objects.values().get(pk=existing.pk)
    assert after.pop("registration_notice_sent_at") is not None
    before.pop("registration_notice_sent_at")
    assert after == before  # nothing else changed: not the password, not the names
    assert len(events(EventType.USER_REGISTERED)) == 1  # the new address only
    notice, welcome = mail.outbox
    assert notice.to == ["taken@example.com"]
    assert "tried to create an account with this email address" in notice.body
    assert not mailed_tokens("verification", to="taken@example.com")
    assert welcome.to == ["someone.new@example.com"]


def test_the_notice_is_sent_at_most_once_a_minute(client, settings):
    make_user("taken@example.com")

    for _ in range(3):
        assert register(client, email="taken@example.com").status_code == 202
    assert len(mail.outbox) == 1

    settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS = 0
    register(client, email="taken@example.com")
    assert len(mail.outbox) == 2


def test_a_deactivated_account_gets_no_notice(client):
    make_user("gone@example.com", is_active=False)

    assert register(client, email="gone@example.com").status_code == 202
    assert mail.outbox == []


def test_a_failure_inside_registration_leaves_no_user_and_no_event(client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("token store down")

    monkeypatch.setattr(one_time_tokens, "issue", explode)
    with pytest.raises(RuntimeError):
        register(client)

    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert mail.outbox == []


def test_an_unverified_account_cannot_log_in(client):
    register(client)

    response = post(client, "login", {"email": "new.user@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert error_code(response) == "email_not_verified"


# --- verify-email ----------------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_verify_email_marks_the_account_verified_then_login_works(client, slash):
    register(client)
    token = last_mailed_token("verification")

    response = post(client, "verify-email" + slash, {"token": token})

    assert response.status_code == 200
    assert response.json()["email_verified"] is True
    user = User.objects.get()
    assert user.email_verified
    [event] = events(EventType.EMAIL_VERIFIED)
    assert event.subject_id == str(user.pk)
    login = post(client, "login", {"email": user.email, "password": PASSWORD})
    assert login.status_code == 200


def test_a_verification_token_works_once(client):
    register(client)
    token = last_mailed_token("verification")
    assert post(client, "verify-email", {"token": token}).status_code == 200

    again = post(client, "verify-email", {"token": token})

    assert again.status_code == 400
    assert error_code(again) == "invalid_token"
    assert len(events(EventType.EMAIL_VERIFIED)) == 1


def test_an_expired_verification_token_is_refused(client):
    register(client)
    token = last_mailed_token("verification")
    OneTimeToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = post(client, "verify-email", {"token": token})

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"
    assert not User.objects.get().email_verified
    assert not events(EventType.EMAIL_VERIFIED)


@pytest.mark.parametrize("token", ["nope", "A" * 43, "x" * 128])
def test_unknown_tokens_are_invalid_token(client, token):
    register(client)

    response = post(client, "verify-email", {"token": token})

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": "x" * 129}, {"token": ["x"]}])
def test_malformed_verify_requests_are_field_errors(client, body):
    response = post(client, "verify-email", body)

    assert response.status_code == 400
    assert "token" in field_errors(response)


def test_a_password_reset_token_does_not_verify_an_email(client):
    user = make_user(verified=False)
    post(client, "password/reset", {"email": user.email})
    reset_token = last_mailed_token("reset")

    response = post(client, "verify-email", {"token": reset_token})

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


# --- resend-verification ---------------------------------------------------------------------


def _age_tokens(seconds: int) -> None:
    OneTimeToken.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.parametrize("slash", ["", "/"])
def test_resend_answers_the_same_for_unknown_verified_and_unverified(client, slash):
    make_user("verified@example.com")
    make_user("pending@example.com", verified=False)
    make_user("disabled@example.com", verified=False, is_active=False)

    answers = [
        post(client, "resend-verification" + slash, {"email": email})
        for email in (
            "nobody@example.com",
            "verified@example.com",
            "pending@example.com",
            "disabled@example.com",
        )
    ]

    assert {response.status_code for response in answers} == {202}
    bodies = [without_request_id(response) for response in answers]
    assert all(body == bodies[0] for body in bodies)
    # Only the unverified, active account got an email.
    assert [message.to for message in mail.outbox] == [["pending@example.com"]]


def test_resend_is_limited_to_one_email_per_minute_per_address(client):
    register(client, email="pending@example.com")
    first = last_mailed_token("verification")

    # Right after registering: the registration email counts, nothing is sent.
    response = post(client, "resend-verification", {"email": "pending@example.com"})
    assert response.status_code == 202
    assert len(mail.outbox) == 1

    _age_tokens(59)
    post(client, "resend-verification", {"email": "PENDING@example.com"})
    assert len(mail.outbox) == 1

    _age_tokens(61)
    post(client, "resend-verification", {"email": "pending@example.com"})
    assert len(mail.outbox) == 2
    second = last_mailed_token("verification")
    assert second != first

    post(client, "resend-verification", {"email": "pending@example.com"})
    assert len(mail.outbox) == 2
    # The limit is per address: another address is not held back.
    make_user("other@example.com", verified=False)
    post(client, "resend-verification", {"email": "other@example.com"})
    assert len(mail.outbox) == 3


def test_a_resent_token_replaces_the_previous_one(client):
    register(client, email="pending@example.com")
    first = last_mailed_token("verification")
    _age_tokens(120)
    post(client, "resend-verification", {"email": "pending@example.com"})
    second = last_mailed_token("verification")

    assert error_code(post(client, "verify-email", {"token": first})) == "invalid_token"
    assert post(client, "verify-email", {"token": second}).status_code == 200
    assert mailed_tokens("verification") == [first, second]


def test_resend_rejects_a_malformed_email(client):
    response = post(client, "resend-verification", {"email": "no"})

    assert response.status_code == 400
    assert "email" in field_errors(response)
