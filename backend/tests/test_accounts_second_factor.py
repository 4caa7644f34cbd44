"""The per-account budget of wrong second-factor codes, recovery codes, and the end of
pending login challenges (backend/docs/accounts.md, accounts/services/second_factor.py)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from accounts_support import PASSWORD, T0, error_code, make_user, post, totp_code
from django.utils import timezone
from identity_support import identity_headers
from prometheus_client import REGISTRY

from auth_backend.accounts import totp
from auth_backend.accounts.models import LoginChallenge, RecoveryCode, User

pytestmark = pytest.mark.django_db
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
WRONG = "000000" if totp_code(SECRET, T0) != "000000" else "111111"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setattr(totp, "now", lambda: T0)


@pytest.fixture
def tfa_user():
    return make_user(totp_secret=SECRET, totp_enabled=True)


def _challenge(client) -> str:
    response = post(client, "login", {"email": "alice@example.com", "password": PASSWORD})
    assert response.json()["requires_2fa"] is True
    return str(response.json()["challenge_token"])


def _finish(client, challenge: str, code: str):
    return post(client, "login/2fa", {"challenge_token": challenge, "code": code})


def _refusals(operation: str) -> float:
    value = REGISTRY.get_sample_value("auth_2fa_budget_refusals_total", {"operation": operation})
    return value or 0.0


def _recovery_codes(client, user: User) -> list[str]:
    user.totp_enabled, user.totp_secret = False, SECRET
    user.save()
    enabled = post(client, "2fa/enable", {"code": totp_code(SECRET, T0)}, **identity_headers(user))
    assert enabled.status_code == 200, enabled.json()
    return list(enabled.json()["recovery_codes"])


def test_the_budget_spans_challenges_and_is_counted(client, tfa_user, settings):
    settings.TWO_FACTOR_FAILURE_LIMIT = 3
    before = _refusals("login")
    statuses = [_finish(client, _challenge(client), WRONG).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = _finish(client, _challenge(client), totp_code(SECRET, T0))
    assert refused.status_code == 429 and error_code(refused) == "two_factor_throttled"
    # until the window that began at the first wrong code ends
    assert 0 < int(refused["Retry-After"]) <= settings.TWO_FACTOR_FAILURE_WINDOW_SECONDS
    assert _refusals("login") - before == 2


def test_the_budget_refills_when_its_window_ends(client, tfa_user, settings):
    settings.TWO_FACTOR_FAILURE_LIMIT = 2
    for _ in range(2):
        assert _finish(client, _challenge(client), WRONG).status_code == 401
    assert _finish(client, _challenge(client), WRONG).status_code == 429
    User.objects.filter(pk=tfa_user.pk).update(
        second_factor_failures_since=timezone.now()
        - timedelta(seconds=settings.TWO_FACTOR_FAILURE_WINDOW_SECONDS)
    )
    assert _finish(client, _challenge(client), totp_code(SECRET, T0)).status_code == 200


def test_a_right_code_refills_the_budget(client, tfa_user, settings):
    settings.TWO_FACTOR_FAILURE_LIMIT = 2
    assert _finish(client, _challenge(client), WRONG).status_code == 401
    assert _finish(client, _challenge(client), totp_code(SECRET, T0)).status_code == 200
    tfa_user.refresh_from_db()
    assert tfa_user.second_factor_failures == 0


def test_disable_and_regeneration_count_wrong_codes(client, tfa_user, settings):
    settings.TWO_FACTOR_FAILURE_LIMIT = 2
    headers = identity_headers(tfa_user)
    assert post(client, "2fa/disable", {"code": WRONG}, **headers).status_code == 400
    assert post(client, "2fa/recovery-codes", {"code": WRONG}, **headers).status_code == 400
    before = _refusals("disable")
    refused = post(client, "2fa/disable", {"code": totp_code(SECRET, T0)}, **headers)
    assert refused.status_code == 429, refused.json()
    assert _refusals("disable") - before == 1
    assert User.objects.get(pk=tfa_user.pk).totp_enabled is True


def test_recovery_codes_are_stored_hashed_and_work_once(client):
    user = make_user()
    codes = _recovery_codes(client, user)
    stored = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert stored == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in stored)
    upper = codes[0].upper().replace("-", "")  # any case, the dash optional
    assert _finish(client, _challenge(client), upper).status_code == 200
    again = _finish(client, _challenge(client), codes[0])
    assert again.status_code == 401 and error_code(again) == "invalid_code"


def test_a_recovery_code_turns_2fa_off(client):
    user = make_user()
    codes = _recovery_codes(client, user)
    off = post(client, "2fa/disable", {"code": codes[3]}, **identity_headers(user))
    assert off.status_code == 200, off.json()
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_enabling_needs_a_totp_code_not_a_recovery_code(client):
    user = make_user(totp_secret=SECRET)
    refused = post(client, "2fa/enable", {"code": "abcde-fghij"}, **identity_headers(user))
    assert refused.status_code == 400 and error_code(refused) == "invalid"


def test_a_challenge_dies_with_a_password_change_on_any_path(client, tfa_user):
    challenge = _challenge(client)
    tfa_user.set_password("another-passphrase-42")  # e.g. the admin's password form
    tfa_user.save()
    dead = _finish(client, challenge, totp_code(SECRET, T0))
    assert dead.status_code == 401 and error_code(dead) == "challenge_expired"


def test_disabling_2fa_ends_pending_challenges(client, tfa_user):
    _challenge(client)
    off = post(client, "2fa/disable", {"code": totp_code(SECRET, T0)}, **identity_headers(tfa_user))
    assert off.status_code == 200, off.json()
    assert not LoginChallenge.objects.filter(user=tfa_user, used_at__isnull=True).exists()
