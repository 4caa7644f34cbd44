"""Email verification: consuming a verification token, and mailing a new one."""

from __future__ import annotations

from django.db import transaction

from auth_backend.accounts import background, emails
from auth_backend.accounts.exceptions import InvalidOneTimeToken
from auth_backend.accounts.models import TokenPurpose, User, normalize_email
from auth_backend.accounts.selectors import user_by_email
from auth_backend.accounts.services import one_time_tokens
from auth_backend.core.metrics import EMAIL_VERIFICATIONS
from auth_backend.events.services import EventType, record_event


def verify_email(token: str) -> User:
    """Consume a verification token and mark the address verified (``EMAIL_VERIFIED``)."""
    try:
        row = one_time_tokens.usable(token, TokenPurpose.VERIFY_EMAIL)
        with transaction.atomic():
            now = one_time_tokens.claim(row)
            newly = User.objects.filter(pk=row.user_id, email_verified_at__isnull=True).update(
                email_verified_at=now
            )
            if newly:
                record_event(EventType.EMAIL_VERIFIED, subject_id=str(row.user_id))
    except InvalidOneTimeToken:
        EMAIL_VERIFICATIONS.labels(result="invalid_token").inc()
        raise
    EMAIL_VERIFICATIONS.labels(result="verified" if newly else "already_verified").inc()
    return User.objects.get(pk=row.user_id)


def resend_verification(email: str) -> None:
    """Mail a new verification token if the address has an active, unverified account.

    Silent in every other case (unknown, verified, inactive, rate-limited): the caller
    answers the same either way, and in the same time -- the lookup and the email are a
    background job (:func:`send_verification_again`), so nothing can be learned about the
    address.
    """
    background.submit(send_verification_again, normalize_email(email))


def send_verification_again(email: str) -> None:
    """The work of :func:`resend_verification`, off the request."""
    user = user_by_email(email)
    if user is None or user.email_verified or not user.is_active:
        return
    raw = one_time_tokens.issue_rate_limited(user, TokenPurpose.VERIFY_EMAIL)
    if raw is not None:
        emails.send_verification_email(user, raw)
