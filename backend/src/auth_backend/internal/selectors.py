"""Read-side queries of the internal API.

Unlike ``accounts.selectors.active_user_by_id``, lookups here include deactivated users:
trusted services need to see that an account exists but is inactive (``is_active``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from auth_backend.accounts.models import User, normalize_email


def user_by_id(user_id: uuid.UUID) -> User | None:
    return User.objects.filter(pk=user_id).first()


def users_by_ids(user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    """The existing users among ``user_ids``, keyed by id (one query)."""
    return {user.pk: user for user in User.objects.filter(pk__in=list(user_ids))}


def email_exists(email: str) -> bool:
    """Whether an account (active or not) uses ``email``; case-insensitive."""
    return User.objects.filter(email=normalize_email(email)).exists()
