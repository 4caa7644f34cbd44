"""Ending sessions: logout, one session by its refresh token, every session of a user.

A revocation marks the refresh family, its refresh tokens and its live access tokens
revoked, and is announced to the edge after commit (:mod:`auth_backend.tokens.revocation`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from auth_backend.core.metrics import LOGOUTS
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens import revocation as revocations
from auth_backend.tokens.models import (
    AccessTokenRecord,
    RefreshFamily,
    RefreshToken,
    TokenNotBefore,
)
from auth_backend.tokens.selectors import (
    access_token_record,
    refresh_token_by_hash,
    unexpired_access_tokens,
)
from auth_backend.tokens.services.issuing import (
    TokenSubject,
    epoch,
    hash_refresh_token,
    looks_like_refresh_token,
)


class RevokeReason:
    LOGOUT = "logout"
    REUSE = "reuse"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason name
    DEACTIVATION = "deactivation"
    # A session started before the user's not-before cut-off, found at its next rotation.
    CUTOFF = "cutoff"


def revoke_family_of(raw_refresh_token: str, *, reason: str) -> None:
    """Revoke the session a refresh token belongs to. Unknown or revoked tokens: no-op."""
    if not looks_like_refresh_token(raw_refresh_token):
        return
    token = refresh_token_by_hash(hash_refresh_token(raw_refresh_token))
    if token is not None:
        _revoke_family(token.family_id, reason=reason)


def revoke_all_for_user(user: TokenSubject, *, reason: str) -> None:
    """End every session of ``user`` and cut off all access tokens issued until now.

    For password reset and deactivation. Call inside the caller's transaction if it has one:
    the announcement to the edge is sent after commit.
    """
    with transaction.atomic():
        now = timezone.now()
        families = list(
            RefreshFamily.objects.select_for_update().filter(
                user_id=user.pk, revoked_at__isnull=True
            )
        )
        TokenNotBefore.objects.update_or_create(user_id=user.pk, defaults={"not_before": now})
        revoke_families(families, user_id=user.pk, reason=reason, now=now, not_before=now)


def logout(
    user: TokenSubject, *, refresh_token: str | None = None, access_token_id: str | None = None
) -> bool:
    """Log ``user`` out of one of their sessions, named by its refresh token or by an access
    token's ``jti``.

    Idempotent and oracle-free: unknown or already revoked sessions, and another account's,
    change nothing. Returns whether a live session was ended (and a ``user.logged_out``
    event recorded).
    """
    with transaction.atomic():
        family: RefreshFamily | None = None
        family_id: uuid.UUID | None = None
        if refresh_token is not None:
            if looks_like_refresh_token(refresh_token):
                token = refresh_token_by_hash(hash_refresh_token(refresh_token))
                family_id = token.family_id if token is not None else None
        elif access_token_id:
            record = access_token_record(access_token_id)
            family_id = record.family_id if record is not None else None
        if family_id is not None and _family_belongs_to(family_id, user):
            family = _revoke_family(family_id, reason=RevokeReason.LOGOUT)
        if family is None:
            return False
        record_event(EventType.LOGGED_OUT, subject_id=str(family.user_id), sid=str(family.pk))
    LOGOUTS.inc()
    return True


def lock_family(family_id: uuid.UUID) -> RefreshFamily:
    return RefreshFamily.objects.select_for_update().get(pk=family_id)


def revoke_families(
    families: Sequence[RefreshFamily],
    *,
    user_id: Any,
    reason: str,
    now: datetime,
    not_before: datetime | None = None,
) -> None:
    """Revoke families (caller holds their locks) and announce it after commit."""
    family_ids = [family.pk for family in families]
    if family_ids:
        RefreshFamily.objects.filter(pk__in=family_ids, revoked_at__isnull=True).update(
            revoked_at=now, revoke_reason=reason
        )
        RefreshToken.objects.filter(family_id__in=family_ids, revoked_at__isnull=True).update(
            revoked_at=now
        )
    live_access = unexpired_access_tokens(family_ids) if family_ids else []
    if live_access:
        AccessTokenRecord.objects.filter(
            pk__in=[jti for jti, _ in live_access],
            revoked_at__isnull=True,
        ).update(revoked_at=now)
    revocations.publish_on_commit(
        revocations.Revocation(
            sub=str(user_id),
            reason=reason,
            jtis=tuple(jti for jti, _ in live_access),
            exp=max((epoch(exp) for _, exp in live_access), default=None),
            not_before=epoch(not_before) if not_before is not None else None,
            sids=tuple(str(family_id) for family_id in family_ids),
        )
    )


def _family_belongs_to(family_id: uuid.UUID, user: TokenSubject) -> bool:
    return RefreshFamily.objects.filter(pk=family_id, user_id=user.pk).exists()


def _revoke_family(family_id: uuid.UUID, *, reason: str) -> RefreshFamily | None:
    """Revoke one family; the family if it was live, else ``None``."""
    with transaction.atomic():
        family = lock_family(family_id)
        if family.is_revoked:
            return None
        revoke_families([family], user_id=family.user_id, reason=reason, now=timezone.now())
        return family
