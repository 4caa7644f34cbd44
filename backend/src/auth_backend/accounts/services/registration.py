"""Registration with email and password, and the notice to an address already registered."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_backend.accounts import background, emails
from auth_backend.accounts.models import TokenPurpose, User, normalize_email
from auth_backend.accounts.selectors import locked_user, user_by_email
from auth_backend.accounts.services import one_time_tokens
from auth_backend.accounts.services.passwords import validate_new_password
from auth_backend.core.metrics import REGISTRATIONS
from auth_backend.events.services import EventType, record_event


def register_user(
    *, email: str, password: str, first_name: str = "", last_name: str = ""
) -> User | None:
    """Create an unverified account and mail it a verification token; ``None`` if the address
    already has an account, whose owner is mailed a notice instead.

    The caller answers the same either way (OWASP Authentication Cheat Sheet: account
    enumeration), and both ways cost the same: the password rules and Argon2, one insert
    attempt, and an email handed to :mod:`~auth_backend.accounts.background`. Duplicates
    (case-insensitive) are refused by the database's unique constraint, not by a prior
    lookup: of any number of concurrent registrations for one address exactly one creates
    the account. The existing account is left exactly as it was.
    """
    user = User(email=normalize_email(email), first_name=first_name, last_name=last_name)
    try:
        validate_new_password(password, user)
    except DjangoValidationError:
        REGISTRATIONS.labels(outcome="invalid_password").inc()
        raise
    user.set_password(password)  # Argon2 before the transaction: no lock held meanwhile
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            raw = one_time_tokens.issue(user, TokenPurpose.VERIFY_EMAIL, timezone.now())
            record_event(EventType.USER_REGISTERED, subject_id=str(user.pk), method="password")
    except IntegrityError:
        if user_by_email(user.email) is None:
            raise  # some other constraint: a bug, not a duplicate
        REGISTRATIONS.labels(outcome="existing_email").inc()
        background.submit(send_registration_notice, user.email)
        return None
    REGISTRATIONS.labels(outcome="created").inc()
    background.submit(emails.send_verification_email, user, raw)
    return user


def send_registration_notice(email: str) -> None:
    """Tell the owner of ``email`` that someone tried to register it (a background job).

    At most one notice per address per ``ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS``: repeated
    attempts cannot flood the owner's mailbox. Nothing is sent for a deactivated account.
    """
    user = user_by_email(email)
    if user is None or not user.is_active:
        return
    interval = timedelta(seconds=settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS)
    with transaction.atomic():
        locked = locked_user(user)
        now = timezone.now()
        last = locked.registration_notice_sent_at
        if last is not None and now - last < interval:
            return
        User.objects.filter(pk=locked.pk).update(registration_notice_sent_at=now)
    emails.send_registration_notice_email(locked)
