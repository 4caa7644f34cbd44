"""The user's own profile."""

from __future__ import annotations

from typing import Any

from auth_backend.accounts.models import User

PROFILE_WRITABLE_FIELDS = ("first_name", "last_name", "bio", "avatar_url", "language")


def update_profile(user: User, **changes: Any) -> User:
    """Write whitelisted profile fields (the serializer already rejected everything else)."""
    unexpected = set(changes) - set(PROFILE_WRITABLE_FIELDS)
    if unexpected:
        raise ValueError(f"not writable: {sorted(unexpected)}")
    if changes:
        for name, value in changes.items():
            setattr(user, name, value)
        user.save(update_fields=list(changes))
    return user
