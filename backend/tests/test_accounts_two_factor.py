"""TOTP two-factor authentication: setup/enable/disable and the 2FA step of sign-in.

The TOTP clock is frozen through ``auth_backend.accounts.totp.now`` (only TOTP's notion of
time moves; JWT and assertion timestamps stay real). Codes are computed with pyotp for
explicit times.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from accounts_support import (
    PASSWORD,
    T0,
    error_code,
    events,
    field_errors,
    make_user,
    post,
    totp_code,
)
from django.utils import timezone
from identity_support import identity_headers

from auth_backend.accounts import totp
from auth_backend.accounts.models import LoginChallenge, User
from auth_backend.accounts.services import sign_in
from auth_backend.events.services import EventType
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def clock(monkeypatch):
    """Set TOTP's clock: ``clock(seconds_after_T0)``; starts at T0."""
    state = {"now": T0}
    monkeypatch.setattr(totp, "now", lambda: state["now"])

    def move(offset: float) -> None:
        state["now"] = T0 + offset

    return move


def code(steps: int = 0, secret: str = SECRET) -> str:
    return totp_code(secret, T0, steps)


@pytest.fixture
def tfa_user():
    return make_user(totp_secret=SECRET, totp_enabled=True)


def challenge(client, email="alice@example.com") -> str:
    response = post(client, "login", {"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json()
    assert response.json()["requires_2fa"] is True
    return response.json()["challenge_token"]


def login_2fa(client, token: str, otp: str, slash: str = ""):
    return post(client, "login/2fa" + slash, {"challenge_token": token, "code": otp})


# --- totp module -----------------------------------------------------------------------------


def test_matching_step_accepts_one_step_of_drift_either_way():
    step = int(T0 // 30)
    assert totp.matching_step(SECRET, code(0), at=T0) == step
    assert totp.matching_step(SECRET, code(-1), at=T0) == step - 1
    assert totp.matching_step(SECRET, code(1), at=T0) == step + 1
    assert totp.matching_step(SECRET, code(-2), at=T0) is None
    assert totp.matching_step(SECRET, code(2), at=T0) is None
    assert totp.matching_step(SECRET, "12345", at=T0) is None
    assert totp.matching_step(SECRET, "abcdef", at=T0) is None
    assert totp.matching_step("", code(0), at=T0) is None


# Digits str.isdigit() accepts but a code never has: the right code, typed in another script.
NON_ASCII_DIGITS = {
    "fullwidth": str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10))),
    "arabic-indic": str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10))),
    "superscript": str.maketrans(
        "0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
    ),
}


@pytest.mark.parametrize("script", sorted(NON_ASCII_DIGITS))
def test_matching_step_refuses_non_ascii_digits_without_raising(script):
    typed = code(0).translate(NON_ASCII_DIGITS[script])
    assert typed.isdigit() and len(typed) == 6

    assert totp.matching_step(SECRET, typed, at=T0) is None


# --- login/2fa -------------------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_valid_code_finishes_the_sign_in(client, clock, tfa_user, slash):
    token = challenge(client)

    response = login_2fa(client, token, code(0), slash)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    claims = validate_access_token(body["access_token"])
    assert claims.sub == str(tfa_user.pk)
    assert claims.amr == ("pwd", "otp")
    tfa_user.refresh_from_db()
    assert tfa_user.last_totp_step == int(T0 // 30)
    assert LoginChallenge.objects.get().used_at is not None
    [event] = events(EventType.LOGIN_SUCCEEDED, tfa_user)
    assert event.payload["amr"] == ["pwd", "otp"]


@pytest.mark.parametrize("steps", [-1, 1])
def test_codes_one_step_off_are_accepted(client, clock, tfa_user, steps):
    assert login_2fa(client, challenge(client), code(steps)).status_code == 200


@pytest.mark.parametrize("steps", [-2, 2])
def test_codes_two_steps_off_are_refused(client, clock, tfa_user, steps):
    response = login_2fa(client, challenge(client), code(steps))

    assert response.status_code == 401
    assert error_code(response) == "invalid_code"


def test_a_code_cannot_be_replayed(client, clock, tfa_user):
    assert login_2fa(client, challenge(client), code(0)).status_code == 200

    # Same code, fresh challenge, still inside its validity window.
    clock(20)
    replay = login_2fa(client, challenge(client), code(0))
    assert replay.status_code == 401
    assert error_code(replay) == "invalid_code"

    # An older code (previous step, still in the ±1 window) is refused too.
    older = login_2fa(client, challenge(client), code(-1))
    assert error_code(older) == "invalid_code"

    # The next step's code works.
    clock(30)
    assert login_2fa(client, challenge(client), code(1)).status_code == 200


def test_at_most_five_wrong_codes_per_challenge(client, clock, tfa_user):
    token = challenge(client)
    wrong = "000000" if code(0) != "000000" else "111111"

    remaining = []
    for _attempt in range(5):
        response = login_2fa(client, token, wrong)
        assert response.status_code == 401
        assert error_code(response) == "invalid_code"
        remaining.append(response.json()["error"]["details"]["attempts_remaining"])
    assert remaining == [4, 3, 2, 1, 0]
    assert LoginChallenge.objects.get().failed_attempts == 5

    # The challenge is dead: even the right code no longer works.
    dead = login_2fa(client, token, code(0))
    assert dead.status_code == 401
    assert error_code(dead) == "challenge_expired"
    assert not events(EventType.LOGIN_SUCCEEDED)
    failures = events(EventType.LOGIN_FAILED, tfa_user)
    assert [event.payload["reason"] for event in failures] == ["wrong_otp"] * 5

    # A new sign-in gets a new challenge with fresh attempts.
    assert login_2fa(client, challenge(client), code(0)).status_code == 200


def test_an_expired_challenge_is_refused(client, clock, tfa_user):
    token = challenge(client)
    LoginChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = login_2fa(client, token, code(0))

    assert response.status_code == 401
    assert error_code(response) == "challenge_expired"
    assert response["WWW-Authenticate"]


def test_the_challenge_expires_after_five_minutes(clock, tfa_user):
    sign_in.create_login_challenge(tfa_user)
    row = LoginChallenge.objects.get()
    assert row.expires_at - row.created_at == timedelta(minutes=5)


def test_a_challenge_works_once(client, clock, tfa_user):
    token = challenge(client)
    assert login_2fa(client, token, code(0)).status_code == 200

    clock(30)
    response = login_2fa(client, token, code(1))

    assert error_code(response) == "challenge_expired"


@pytest.mark.parametrize("token", ["unknown-challenge", "x" * 128])
def test_unknown_challenges_are_expired(client, clock, tfa_user, token):
    response = login_2fa(client, token, code(0))

    assert response.status_code == 401
    assert error_code(response) == "challenge_expired"


@pytest.mark.parametrize("change", [{"is_active": False}, {"totp_enabled": False}])
def test_a_challenge_dies_when_the_user_turns_2fa_off_or_is_disabled(
    client, clock, tfa_user, change
):
    token = challenge(client)
    User.objects.filter(pk=tfa_user.pk).update(**change)

    assert error_code(login_2fa(client, token, code(0))) == "challenge_expired"


@pytest.mark.parametrize(
    "body",
    [{}, {"challenge_token": "t", "code": "12345"}, {"challenge_token": "t", "code": "1234567"}],
)
def test_malformed_2fa_requests_are_field_errors(client, body):
    response = post(client, "login/2fa", body)

    assert response.status_code == 400
    assert field_errors(response)


@pytest.mark.parametrize("script", sorted(NON_ASCII_DIGITS))
def test_non_ascii_digits_in_a_login_code_are_a_400_not_a_500(client, clock, tfa_user, script):
    token = challenge(client)
    client.raise_request_exception = False

    response = login_2fa(client, token, code(0).translate(NON_ASCII_DIGITS[script]))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"error", "request_id"}
    assert list(field_errors(response)) == ["code"]
    # Not counted against the challenge: the right code still finishes the sign-in.
    assert LoginChallenge.objects.get().failed_attempts == 0
    assert login_2fa(client, token, code(0)).status_code == 200


def test_a_google_first_factor_carries_into_the_amr(client, clock, tfa_user):
    token = sign_in.create_login_challenge(tfa_user, amr=("google",))

    response = login_2fa(client, token, code(0))

    assert validate_access_token(response.json()["access_token"]).amr == ("google", "otp")


# --- 2fa setup / enable / disable ------------------------------------------------------------


def test_2fa_endpoints_require_the_gateway_identity(client):
    for path in ("2fa/setup", "2fa/enable", "2fa/disable"):
        response = post(client, path, {"code": "123456"})
        assert response.status_code == 401, path
        assert error_code(response) == "not_authenticated"


@pytest.mark.parametrize("slash", ["", "/"])
def test_setup_returns_a_pending_secret_without_enabling(client, slash):
    user = make_user()

    response = post(client, "2fa/setup" + slash, **identity_headers(user))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri"}
    assert len(body["secret"]) == 32
    uri = urlparse(body["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert "alice%40example.com" in uri.path or "alice@example.com" in uri.path
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["Marketplace"]
    assert pyotp.parse_uri(body["otpauth_uri"]).secret == body["secret"]
    user.refresh_from_db()
    assert user.totp_secret == body["secret"]
    assert user.totp_enabled is False
    assert response["Cache-Control"] == "no-store"


def test_enable_with_a_valid_code_then_login_needs_2fa(client, clock):
    user = make_user()
    secret = post(client, "2fa/setup", **identity_headers(user)).json()["secret"]

    wrong = post(
        client,
        "2fa/enable",
        {"code": "000000" if code(0, secret) != "000000" else "111111"},
        **identity_headers(user),
    )
    assert wrong.status_code == 400
    assert error_code(wrong) == "invalid_code"
    assert not events(EventType.TWO_FACTOR_ENABLED)

    response = post(client, "2fa/enable", {"code": code(0, secret)}, **identity_headers(user))

    assert response.status_code == 200
    assert response.json()["two_factor_enabled"] is True
    assert len(set(response.json()["recovery_codes"])) == 10
    user.refresh_from_db()
    assert user.totp_enabled
    [event] = events(EventType.TWO_FACTOR_ENABLED, user)
    assert event.subject_id == str(user.pk)
    assert (
        post(client, "login", {"email": user.email, "password": PASSWORD}).json()["requires_2fa"]
        is True
    )
    # The code that enabled 2FA cannot also finish a sign-in.
    assert error_code(login_2fa(client, challenge(client), code(0, secret))) == "invalid_code"


def test_enable_without_setup_and_setup_while_enabled_conflict(client, clock, tfa_user):
    fresh = make_user("fresh@example.com")
    response = post(client, "2fa/enable", {"code": "123456"}, **identity_headers(fresh))
    assert response.status_code == 409
    assert error_code(response) == "two_factor_setup_required"

    again = post(client, "2fa/setup", **identity_headers(tfa_user))
    assert again.status_code == 409
    assert error_code(again) == "two_factor_already_enabled"
    tfa_user.refresh_from_db()
    assert tfa_user.totp_secret == SECRET  # the active secret was not replaced

    enable = post(client, "2fa/enable", {"code": code(0)}, **identity_headers(tfa_user))
    assert error_code(enable) == "two_factor_already_enabled"


def test_disable_needs_a_valid_unused_code(client, clock, tfa_user):
    assert login_2fa(client, challenge(client), code(0)).status_code == 200

    replayed = post(client, "2fa/disable", {"code": code(0)}, **identity_headers(tfa_user))
    assert replayed.status_code == 400
    assert error_code(replayed) == "invalid_code"
    assert not events(EventType.TWO_FACTOR_DISABLED)

    clock(30)
    response = post(client, "2fa/disable", {"code": code(1)}, **identity_headers(tfa_user))

    assert response.status_code == 200
    assert response.json() == {"two_factor_enabled": False}
    tfa_user.refresh_from_db()
    assert (tfa_user.totp_enabled, tfa_user.totp_secret) == (False, "")
    [event] = events(EventType.TWO_FACTOR_DISABLED, tfa_user)
    assert event.subject_id == str(tfa_user.pk)
    # Sign-in is back to one step.
    login = post(client, "login", {"email": tfa_user.email, "password": PASSWORD})
    assert "access_token" in login.json()


@pytest.mark.parametrize("path", ["2fa/disable", "2fa/enable"])
@pytest.mark.parametrize("script", sorted(NON_ASCII_DIGITS))
def test_non_ascii_digits_in_a_2fa_code_are_a_400_not_a_500(client, clock, path, script):
    user = make_user(totp_secret=SECRET, totp_enabled=path == "2fa/disable")
    client.raise_request_exception = False

    response = post(
        client,
        path,
        {"code": code(0).translate(NON_ASCII_DIGITS[script])},
        **identity_headers(user),
    )

    assert response.status_code == 400
    assert set(response.json()) == {"error", "request_id"}
    assert list(field_errors(response)) == ["code"]
    user.refresh_from_db()
    assert (user.totp_enabled, user.totp_secret) == (path == "2fa/disable", SECRET)


def test_disable_when_not_enabled_conflicts(client):
    user = make_user()

    response = post(client, "2fa/disable", {"code": "123456"}, **identity_headers(user))

    assert response.status_code == 409
    assert error_code(response) == "two_factor_not_enabled"
