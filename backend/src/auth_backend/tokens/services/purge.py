"""Deleting token bookkeeping that can no longer matter (``manage.py purge_expired_tokens``)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from auth_backend.tokens.models import AccessTokenRecord, RefreshFamily, RefreshToken


def purge_expired_tokens(*, grace_days: int = 7) -> dict[str, int]:
    """Delete bookkeeping that can no longer matter, ``grace_days`` after it stopped mattering.

    Used refresh tokens are kept until they expire: presenting one must keep counting as
    reuse. Returns the number of rows deleted per kind.
    """
    cutoff = timezone.now() - timedelta(days=max(grace_days, 0))
    with transaction.atomic():
        access, _ = AccessTokenRecord.objects.filter(expires_at__lt=cutoff).delete()
        refresh, _ = RefreshToken.objects.filter(
            Q(expires_at__lt=cutoff) | Q(family__revoked_at__lt=cutoff)
        ).delete()
        families, _ = RefreshFamily.objects.filter(
            created_at__lt=cutoff, tokens__isnull=True, access_tokens__isnull=True
        ).delete()
    return {"access_tokens": access, "refresh_tokens": refresh, "sessions": families}
