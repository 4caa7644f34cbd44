"""Read-side queries on accounts."""

from __future__ import annotations

import uuid

from auth_backend.accounts.models import User, normalize_email


def active_user_by_id(user_id: str | uuid.UUID) -> User | None:
    try:
        key = uuid.UUID(str(user_id))
    except ValueError:
        return None
    return User.objects.filter(pk=key, is_active=True).first()


def user_by_email(email: str) -> User | None:
    return User.objects.filter(email=normalize_email(email)).first()
