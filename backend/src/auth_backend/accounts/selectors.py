"""Read-side queries on accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from auth_backend.accounts.models import (
    LoginChallenge,
    OneTimeToken,
    TokenPurpose,
    User,
    legacy_normalize_email,
    normalize_email,
)


def active_user_by_id(user_id: str | uuid.UUID) -> User | None:
    try:
        key = uuid.UUID(str(user_id))
    except ValueError:
        return None
    return User.objects.filter(pk=key, is_active=True).first()


def user_by_email(email: str) -> User | None:
    """The account of ``email``'s mailbox: its canonical spelling, or -- for a row stored
    before addresses had one (no data migration: two such rows may be one mailbox, which
    only a person can merge) -- its lower-cased spelling, the canonical row first."""
    canonical, legacy = normalize_email(email), legacy_normalize_email(email)
    if canonical == legacy:
        return User.objects.filter(email=canonical).first()
    rows = {user.email: user for user in User.objects.filter(email__in=[canonical, legacy])}
    return rows.get(canonical) or rows.get(legacy)


def one_time_token_by_hash(token_hash: str, purpose: TokenPurpose) -> OneTimeToken | None:
    """The token row with this hash and purpose (used or not, expired or not)."""
    return (
        OneTimeToken.objects.select_related("user")
        .filter(token_hash=token_hash, purpose=purpose)
        .first()
    )


def last_email_sent_at(user: User, purpose: TokenPurpose) -> datetime | None:
    """When the newest token of ``purpose`` was mailed to ``user`` (its ``created_at``)."""
    return (
        OneTimeToken.objects.filter(user=user, purpose=purpose)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def login_challenge_by_hash(token_hash: str) -> LoginChallenge | None:
    return LoginChallenge.objects.filter(token_hash=token_hash).first()


def locked_user(user: User) -> User:
    """``user``'s row, locked until the end of the transaction (``SELECT … FOR UPDATE``)."""
    return User.objects.select_for_update().get(pk=user.pk)
