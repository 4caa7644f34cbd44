"""Refresh-token rotation, reuse detection, expiry, logout and the token endpoints."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import jwt
import pytest
from django.core.management import call_command
from django.utils import timezone
from identity_support import identity_headers

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.tokens.exceptions import InvalidAccessToken, InvalidRefreshToken
from auth_backend.tokens.models import (
    AccessTokenRecord,
    RefreshFamily,
    RefreshToken,
    TokenNotBefore,
)
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.revoking import revoke_all_for_user, revoke_family_of
from auth_backend.tokens.services.rotation import rotate_refresh_token
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

REFRESH_URL = "/api/auth/token/refresh"
LOGOUT_URL = "/api/auth/logout"


@pytest.fixture
def user() -> User:
    return User.objects.create_user("grace@example.com", email_verified_at=timezone.now())


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# --- service ---------------------------------------------------------------------------------


def test_refresh_tokens_are_opaque_random_and_stored_hashed(user):
    pair = issue_token_pair(user)
    assert len(pair.refresh_token) >= 43
    assert pair.refresh_token.count(".") == 0  # not a JWT
    row = RefreshToken.objects.get()
    assert row.token_hash == hashlib.sha256(pair.refresh_token.encode()).hexdigest()
    assert pair.refresh_token not in {row.token_hash, str(row.pk)}
    assert issue_token_pair(user).refresh_token != pair.refresh_token


def test_each_login_starts_its_own_family(user):
    first, second = issue_token_pair(user), issue_token_pair(user)
    assert RefreshFamily.objects.filter(user=user).count() == 2
    assert _claims(first.access_token)["sid"] != _claims(second.access_token)["sid"]


def test_rotation_returns_a_new_pair_in_the_same_family_and_keeps_amr(user):
    first = issue_token_pair(user, amr=("pwd", "otp"))
    second = rotate_refresh_token(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    old, new = _claims(first.access_token), _claims(second.access_token)
    assert new["sid"] == old["sid"]
    assert new["jti"] != old["jti"]
    assert new["amr"] == ["pwd", "otp"]
    assert RefreshToken.objects.get(
        token_hash=hashlib.sha256(first.refresh_token.encode()).hexdigest()
    ).used_at
    assert validate_access_token(second.access_token).sid == old["sid"]
    # the successor rotates in turn
    assert rotate_refresh_token(second.refresh_token).refresh_token


def test_rotation_reflects_role_changes(user):
    pair = issue_token_pair(user)
    user.is_seller = True
    user.save()
    claims = _claims(rotate_refresh_token(pair.refresh_token).access_token)
    assert claims["roles"] == ["user", "seller"]
    assert claims["scope"] == "profile seller"


def test_reusing_a_rotated_token_revokes_the_whole_family(user, django_capture_on_commit_callbacks):
    first = issue_token_pair(user)
    second = rotate_refresh_token(first.refresh_token)
    other_session = issue_token_pair(user)

    with pytest.raises(InvalidRefreshToken), django_capture_on_commit_callbacks() as callbacks:
        rotate_refresh_token(first.refresh_token)  # reuse: someone holds a copy
    family = RefreshFamily.objects.get(pk=_claims(first.access_token)["sid"])
    assert family.revoked_at is not None
    assert family.revoke_reason == "reuse"
    assert len(callbacks) == 1  # the revocation is announced to the edge after commit

    # the newest token of the family is dead as well, and so are its access tokens
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(second.refresh_token)
    for token in (first.access_token, second.access_token):
        with pytest.raises(InvalidAccessToken) as excinfo:
            validate_access_token(token)
        assert excinfo.value.reason == "revoked"
    # other sessions of the same user are untouched
    assert rotate_refresh_token(other_session.refresh_token)


def test_expired_refresh_token_is_invalid_and_not_reuse(user, settings):
    pair = issue_token_pair(user)
    RefreshToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)
    assert RefreshFamily.objects.get().revoked_at is None


def test_refresh_token_lifetime_comes_from_settings(user, settings):
    settings.REFRESH_TOKEN_TTL_SECONDS = 3600
    before = timezone.now()
    issue_token_pair(user)
    row = RefreshToken.objects.get()
    assert timedelta(seconds=3590) < row.expires_at - before <= timedelta(seconds=3601)


@pytest.mark.parametrize("raw", ["", "x", "not-a-token" * 10, "a" * 600])
def test_unknown_or_malformed_refresh_tokens_are_invalid(user, raw):
    issue_token_pair(user)
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(raw)


def test_deactivated_user_cannot_refresh(user):
    pair = issue_token_pair(user)
    user.is_active = False
    user.save()
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)


def test_revoke_family_of_ends_only_that_session(user):
    first, second = issue_token_pair(user), issue_token_pair(user)
    revoke_family_of(first.refresh_token, reason="logout")
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(first.refresh_token)
    with pytest.raises(InvalidAccessToken):
        validate_access_token(first.access_token)
    assert validate_access_token(second.access_token)
    assert rotate_refresh_token(second.refresh_token)
    revoke_family_of("unknown-token", reason="logout")  # no-op, no error


def test_revoke_all_for_user_ends_every_session_and_sets_not_before(user):
    pairs = [issue_token_pair(user) for _ in range(3)]
    someone_else = User.objects.create_user("linus@example.com")
    theirs = issue_token_pair(someone_else)

    revoke_all_for_user(user, reason="password_reset")

    assert TokenNotBefore.objects.filter(user=user).exists()
    assert set(RefreshFamily.objects.filter(user=user).values_list("revoke_reason", flat=True)) == {
        "password_reset"
    }
    for pair in pairs:
        with pytest.raises(InvalidRefreshToken):
            rotate_refresh_token(pair.refresh_token)
        with pytest.raises(InvalidAccessToken):
            validate_access_token(pair.access_token)
    assert AccessTokenRecord.objects.filter(user=user, revoked_at__isnull=True).count() == 0
    assert validate_access_token(theirs.access_token)
    # signing in again afterwards works (iat in the same second as the cut-off is fine)
    fresh = issue_token_pair(user)
    assert validate_access_token(fresh.access_token).sub == str(user.pk)
    assert rotate_refresh_token(fresh.refresh_token)


def test_session_started_before_the_cut_off_dies_at_its_next_rotation(user):
    """A login racing a password reset (committed after the reset's family scan)."""
    pair = issue_token_pair(user)
    TokenNotBefore.objects.create(user=user, not_before=timezone.now() + timedelta(seconds=1))
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)
    assert RefreshFamily.objects.get().revoke_reason == "cutoff"


def test_purge_expired_tokens_keeps_what_still_matters(user):
    live = issue_token_pair(user)
    rotated = issue_token_pair(user)
    rotate_refresh_token(rotated.refresh_token)
    old = issue_token_pair(user)
    long_ago = timezone.now() - timedelta(days=30)
    old_family = _claims(old.access_token)["sid"]
    RefreshFamily.objects.filter(pk=old_family).update(created_at=long_ago)
    RefreshToken.objects.filter(family_id=old_family).update(expires_at=long_ago)
    AccessTokenRecord.objects.filter(family_id=old_family).update(expires_at=long_ago)

    call_command("purge_expired_tokens", stdout=None)

    assert not RefreshFamily.objects.filter(pk=old_family).exists()
    assert rotate_refresh_token(live.refresh_token)
    with pytest.raises(InvalidRefreshToken):  # a used token still counts as reuse
        rotate_refresh_token(rotated.refresh_token)
    assert (
        RefreshFamily.objects.get(pk=_claims(rotated.access_token)["sid"]).revoke_reason == "reuse"
    )


# --- endpoints -------------------------------------------------------------------------------


def test_refresh_endpoint_returns_a_new_pair(client, user):
    pair = issue_token_pair(user)
    response = client.post(
        REFRESH_URL, {"refresh_token": pair.refresh_token}, content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response["Cache-Control"] == "no-store"
    assert validate_access_token(body["access_token"]).sub == str(user.pk)
    # trailing slash accepted too
    again = client.post(
        REFRESH_URL + "/", {"refresh_token": body["refresh_token"]}, content_type="application/json"
    )
    assert again.status_code == 200


def test_refresh_endpoint_rejects_reuse_with_401(client, user):
    pair = issue_token_pair(user)
    client.post(REFRESH_URL, {"refresh_token": pair.refresh_token}, content_type="application/json")
    response = client.post(
        REFRESH_URL, {"refresh_token": pair.refresh_token}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_refresh_endpoint_validates_the_body(client):
    response = client.post(REFRESH_URL, {}, content_type="application/json")
    assert response.status_code == 400
    assert "refresh_token" in response.json()["error"]["details"]["fields"]


def test_logout_revokes_the_family_and_records_an_event(client, user):
    pair = issue_token_pair(user)
    response = client.post(
        LOGOUT_URL,
        {"refresh_token": pair.refresh_token},
        content_type="application/json",
        **identity_headers(user),
    )
    assert response.status_code == 204
    assert RefreshFamily.objects.get().revoke_reason == "logout"
    [event] = OutboxEvent.objects.filter(event_type="user.logged_out")
    assert event.subject_id == str(user.pk)
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)


def test_logout_is_idempotent_and_no_oracle(client, user):
    pair = issue_token_pair(user)
    answers = [
        client.post(
            LOGOUT_URL,
            {"refresh_token": token},
            content_type="application/json",
            **identity_headers(user),
        )
        for token in (pair.refresh_token, pair.refresh_token, "never-issued-token")
    ]
    assert [r.status_code for r in answers] == [204, 204, 204]
    assert {r.content for r in answers} == {b""}
    assert OutboxEvent.objects.filter(event_type="user.logged_out").count() == 1


def test_logout_through_the_gateway_ends_the_session_of_the_access_token(client, user):
    pair = issue_token_pair(user)
    other = issue_token_pair(user)
    jti = _claims(pair.access_token)["jti"]
    response = client.post(
        LOGOUT_URL, {}, content_type="application/json", **identity_headers(user, jti=jti)
    )
    assert response.status_code == 204
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)
    assert rotate_refresh_token(other.refresh_token)


def test_logout_without_identity_is_401_and_ends_nothing(client, user):
    """The gateway's route needs the access token; so does this service (a refresh token
    alone, straight to the backend, used to be enough)."""
    pair = issue_token_pair(user)
    response = client.post(
        LOGOUT_URL, {"refresh_token": pair.refresh_token}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert rotate_refresh_token(pair.refresh_token)


def test_logout_leaves_another_accounts_session_alone(client, user):
    other = User.objects.create_user("other@example.com", "another-passphrase-3")
    theirs = issue_token_pair(other)
    response = client.post(
        LOGOUT_URL,
        {"refresh_token": theirs.refresh_token},
        content_type="application/json",
        **identity_headers(user),
    )
    assert response.status_code == 204  # no oracle
    assert rotate_refresh_token(theirs.refresh_token)
    assert not OutboxEvent.objects.filter(event_type="user.logged_out").exists()


def test_logout_holds_while_redis_cannot_check_the_assertion(client, user, monkeypatch):
    """Redis down: assertions are anonymous (the once-only and revocation checks cannot
    run), but logout -- which can only end the asserted user's own session -- still works
    on the assertion's signature, expiry and request binding (backend/docs/revocation.md)."""
    from auth_backend.identity import store
    from edge_identity import StoreUnavailable

    def unavailable(**_: object) -> store.Admission:
        raise StoreUnavailable("refused")

    monkeypatch.setattr(store.identity_store, "admit", unavailable)
    pair = issue_token_pair(user)
    assert client.get("/api/auth/profile", **identity_headers(user)).status_code == 401
    response = client.post(
        LOGOUT_URL,
        {"refresh_token": pair.refresh_token},
        content_type="application/json",
        **identity_headers(user),
    )
    assert response.status_code == 204, response.content
    with pytest.raises(InvalidRefreshToken):
        rotate_refresh_token(pair.refresh_token)
    forged = client.post(
        LOGOUT_URL,
        {"refresh_token": issue_token_pair(user).refresh_token},
        content_type="application/json",
        HTTP_X_IDENTITY_ASSERTION="not-a-signed-assertion",
    )
    assert forged.status_code == 401
