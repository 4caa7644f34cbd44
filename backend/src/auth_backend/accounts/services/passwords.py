"""Password rules, the constant-cost check for accounts without a password, password reset."""

from __future__ import annotations

import functools
import secrets

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from auth_backend.accounts import background, emails
from auth_backend.accounts.exceptions import InvalidOneTimeToken
from auth_backend.accounts.models import OneTimeToken, TokenPurpose, User, normalize_email
from auth_backend.accounts.selectors import locked_user, user_by_email
from auth_backend.accounts.services import one_time_tokens, second_factor
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens.services.revoking import revoke_all_for_user


@functools.cache
def _dummy_password_hash() -> str:
    return make_password(secrets.token_urlsafe(16))


def spend_password_check_time(password: str) -> None:
    """Verify against a dummy Argon2 hash: as slow as checking a real password."""
    check_password(password, _dummy_password_hash())


def validate_new_password(password: str, user: User) -> None:
    """Django's password validators; errors under the ``password`` field."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise DjangoValidationError({"password": exc.error_list}) from None


def request_password_reset(email: str) -> None:
    """Mail a reset token to an active account's address; silent otherwise (like resend).

    Same work for every address in the request: the job (:func:`send_password_reset`) is
    handed to the background worker, which looks the address up.
    """
    background.submit(send_password_reset, normalize_email(email))


def send_password_reset(email: str) -> None:
    """The work of :func:`request_password_reset`, off the request."""
    user = user_by_email(email)
    if user is None or not user.is_active:
        return
    raw = one_time_tokens.issue_rate_limited(user, TokenPurpose.PASSWORD_RESET)
    if raw is not None:
        emails.send_password_reset_email(user, raw)


def confirm_password_reset(*, token: str, new_password: str) -> User:
    """Set a new password with a reset token, and end every session of the account.

    The token proved control of the mailbox, so the address counts as verified too (this
    also takes over an account someone else pre-registered with the address). Every refresh
    family is revoked and the edge told to drop the access tokens (``password_reset``), and
    every pending 2FA login challenge ends (one started with the old password is dead).
    """
    row = one_time_tokens.usable(token, TokenPurpose.PASSWORD_RESET)
    user = row.user
    if not user.is_active:
        raise InvalidOneTimeToken()
    validate_new_password(new_password, user)
    user.set_password(new_password)  # hash before taking locks
    with transaction.atomic():
        now = one_time_tokens.claim(row)
        locked = locked_user(user)
        locked.password = user.password
        fields = ["password"]
        if locked.email_verified_at is None:
            locked.email_verified_at = now
            fields.append("email_verified_at")
        locked.save(update_fields=fields)
        OneTimeToken.objects.filter(
            user=locked, purpose=TokenPurpose.PASSWORD_RESET, used_at__isnull=True
        ).delete()
        second_factor.end_login_challenges(locked, now)
        revoke_all_for_user(locked, reason="password_reset")
        record_event(EventType.PASSWORD_RESET, subject_id=str(locked.pk))
    return locked
