"""Password sign-in: tokens, one answer for every credential failure, events."""

from __future__ import annotations

import pytest
from accounts_support import (
    PASSWORD,
    error_code,
    events,
    field_errors,
    make_user,
    post,
    without_request_id,
)
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.db import connection

from auth_backend.accounts.models import LoginChallenge, User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db


def login(client, email="alice@example.com", password=PASSWORD, slash=""):
    return post(client, "login" + slash, {"email": email, "password": password})


@pytest.mark.parametrize("slash", ["", "/"])
def test_login_answers_a_token_pair(client, slash):
    user = make_user()

    response = login(client, slash=slash)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response["Cache-Control"] == "no-store"
    claims = validate_access_token(body["access_token"])
    assert claims.sub == str(user.pk)
    assert claims.amr == ("pwd",)
    user.refresh_from_db()
    assert user.last_login is not None
    [event] = events(EventType.LOGIN_SUCCEEDED)
    assert event.subject_id == str(user.pk)
    assert event.payload["amr"] == ["pwd"]
    assert not events(EventType.LOGIN_FAILED)


def test_login_email_is_case_insensitive(client):
    make_user("alice@example.com")

    assert login(client, email="  ALICE@Example.com").status_code == 200


def test_unknown_email_and_wrong_password_get_the_same_answer(client):
    user = make_user()
    make_user("disabled@example.com", is_active=False)
    make_user("google-only@example.com", password=None, google_sub="g-123")

    answers = [
        login(client, email="nobody@example.com"),
        login(client, password="wrong-password-123"),
        login(client, email="disabled@example.com"),  # right password, inactive
        login(client, email="google-only@example.com", password="anything-at-all"),
    ]

    assert [response.status_code for response in answers] == [401] * 4
    bodies = [without_request_id(response) for response in answers]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["error"]["code"] == "invalid_credentials"
    assert all(response["WWW-Authenticate"] for response in answers)
    assert not events(EventType.LOGIN_SUCCEEDED)
    reasons = {event.payload["reason"] for event in events(EventType.LOGIN_FAILED)}
    assert reasons == {"unknown_email", "wrong_password", "inactive", "no_password"}
    assert [e.subject_id for e in events(EventType.LOGIN_FAILED, user)] == [str(user.pk)]


@pytest.mark.argon2
def test_every_credential_failure_costs_one_argon2_verification(client, monkeypatch):
    """Same work for unknown and known emails: the timing does not tell them apart."""
    make_user()
    make_user("google-only@example.com", password=None)
    calls: list[str] = []
    real_verify = Argon2PasswordHasher.verify

    def counting_verify(self, password, encoded):
        calls.append(password)
        return real_verify(self, password, encoded)

    monkeypatch.setattr(Argon2PasswordHasher, "verify", counting_verify)
    for email, password in [
        ("nobody@example.com", "pw-unknown-1"),
        ("alice@example.com", "pw-wrong-2"),
        ("google-only@example.com", "pw-nopass-3"),
    ]:
        calls.clear()
        assert login(client, email=email, password=password).status_code == 401
        assert calls == [password], email


def test_unverified_account_with_the_right_password_gets_email_not_verified(client):
    user = make_user(verified=False)

    response = login(client)

    assert response.status_code == 403
    assert error_code(response) == "email_not_verified"
    [event] = events(EventType.LOGIN_FAILED, user)
    assert event.payload["reason"] == "email_not_verified"
    # A wrong password on an unverified account is just invalid_credentials.
    assert error_code(login(client, password="wrong-password-123")) == "invalid_credentials"


def test_two_factor_accounts_get_a_challenge_instead_of_tokens(client):
    user = make_user(totp_secret="JBSWY3DPEHPK3PXP", totp_enabled=True)

    response = login(client)

    assert response.status_code == 200
    body = response.json()
    assert body["requires_2fa"] is True
    assert set(body) == {"requires_2fa", "challenge_token"}
    challenge = LoginChallenge.objects.get(user=user)
    assert body["challenge_token"] not in challenge.token_hash
    assert challenge.amr == ["pwd"]
    assert not events(EventType.LOGIN_SUCCEEDED)


@pytest.mark.parametrize(
    "body", [{}, {"email": "alice@example.com"}, {"email": "not-an-email", "password": "x"}]
)
def test_malformed_login_requests_are_field_errors(client, body):
    response = post(client, "login", body)

    assert response.status_code == 400
    assert field_errors(response)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True])
def test_the_login_failed_event_is_committed_although_the_request_fails(
    client, monkeypatch, atomic_requests
):
    """The failure event is not part of a transaction the error rolls back — not even
    with ATOMIC_REQUESTS on (the login views opt out of it)."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    user = make_user()

    assert login(client, password="wrong-password-123").status_code == 401

    assert not connection.in_atomic_block  # really committed, not a test savepoint
    [event] = OutboxEvent.objects.filter(event_type=EventType.LOGIN_FAILED)
    assert event.subject_id == str(user.pk)
    assert User.objects.count() == 1
