"""Read-side queries of the tokens app."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from auth_backend.tokens.models import (
    AccessTokenRecord,
    RefreshFamily,
    RefreshToken,
    TokenNotBefore,
)


def active_user_by_id(user_id: str | uuid.UUID) -> Any | None:
    """The active user with this id (``settings.AUTH_USER_MODEL``), else ``None``."""
    try:
        key = uuid.UUID(str(user_id))
    except ValueError:
        return None
    return get_user_model().objects.filter(pk=key, is_active=True).first()


def refresh_token_by_hash(token_hash: str) -> RefreshToken | None:
    return RefreshToken.objects.filter(token_hash=token_hash).first()


def access_token_record(jti: str) -> AccessTokenRecord | None:
    return AccessTokenRecord.objects.select_related("family").filter(jti=jti).first()


def user_not_before(user_id: uuid.UUID | str) -> datetime | None:
    return (
        TokenNotBefore.objects.filter(user_id=user_id).values_list("not_before", flat=True).first()
    )


def live_families_of(user_id: uuid.UUID | str) -> list[RefreshFamily]:
    return list(RefreshFamily.objects.filter(user_id=user_id, revoked_at__isnull=True))


def active_session_count() -> int:
    """Live sessions: families not revoked whose current (unused) refresh token is unexpired.

    A family has one unused token at a time (rotation marks the old one used in the same
    transaction), so counting those tokens counts families; revocation marks the tokens
    revoked too, the family condition is only belt and braces.
    """
    return RefreshToken.objects.filter(
        used_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
        family__revoked_at__isnull=True,
    ).count()


def unexpired_access_tokens(family_ids: list[uuid.UUID]) -> list[tuple[str, datetime]]:
    """``(jti, expires_at)`` of the families' access tokens that have not expired yet."""
    return list(
        AccessTokenRecord.objects.filter(
            family_id__in=family_ids,
            expires_at__gt=timezone.now(),
        ).values_list("jti", "expires_at")
    )
