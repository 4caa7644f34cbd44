"""Random tokens handed to a user: email verification and password reset codes (one-time
tokens, :class:`~auth_backend.accounts.models.OneTimeToken`) and 2FA login challenges.

Only a token's SHA-256 is stored; the raw value exists in the email or the response only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth_backend.accounts.exceptions import InvalidOneTimeToken
from auth_backend.accounts.models import OneTimeToken, TokenPurpose, User
from auth_backend.accounts.selectors import last_email_sent_at, locked_user, one_time_token_by_hash

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything much longer is not ours (cheap early reject).
MAX_TOKEN_LENGTH = 128


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 (the raw value is never stored)."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    return raw, hash_token(raw)


def plausible(raw: object) -> bool:
    """Could ``raw`` be one of our tokens at all (a string of a sane length)?"""
    return isinstance(raw, str) and 0 < len(raw) <= MAX_TOKEN_LENGTH


def _ttl(purpose: TokenPurpose) -> timedelta:
    if purpose == TokenPurpose.VERIFY_EMAIL:
        return timedelta(seconds=settings.EMAIL_VERIFICATION_TOKEN_TTL_SECONDS)
    return timedelta(seconds=settings.PASSWORD_RESET_TOKEN_TTL_SECONDS)


def issue(user: User, purpose: TokenPurpose, now: datetime) -> str:
    """A new token of ``purpose`` for ``user``; outstanding ones of that purpose stop working.

    Only the newest email works: an older one lying in a mailbox is worth nothing.
    """
    OneTimeToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).delete()
    raw, digest = new_token()
    OneTimeToken.objects.create(
        user=user,
        purpose=purpose,
        token_hash=digest,
        created_at=now,
        expires_at=now + _ttl(purpose),
    )
    return raw


def issue_rate_limited(user: User, purpose: TokenPurpose) -> str | None:
    """Like :func:`issue`, unless one was mailed less than a minute ago.

    The user row lock serializes concurrent requests for one address, so two of them cannot
    both see "nothing sent recently" (PostgreSQL; SQLite serializes writers anyway).
    """
    with transaction.atomic():
        locked = locked_user(user)
        now = timezone.now()
        last = last_email_sent_at(locked, purpose)
        interval = timedelta(seconds=settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS)
        if last is not None and now - last < interval:
            return None
        return issue(locked, purpose, now)


def usable(raw: object, purpose: TokenPurpose) -> OneTimeToken:
    """The unused, unexpired token row for ``raw``; :class:`InvalidOneTimeToken` otherwise."""
    if not plausible(raw):
        raise InvalidOneTimeToken()
    token = one_time_token_by_hash(hash_token(str(raw)), purpose)
    if token is None or not token.is_usable(timezone.now()):
        raise InvalidOneTimeToken()
    return token


def claim(token: OneTimeToken) -> datetime:
    """Mark ``token`` used; exactly one concurrent caller wins, the others get 400.

    Call inside the transaction of the change the token authorises, so a failure after the
    claim gives the token back.
    """
    now = timezone.now()
    claimed = OneTimeToken.objects.filter(
        pk=token.pk, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if claimed != 1:
        raise InvalidOneTimeToken()
    token.used_at = now
    return now
