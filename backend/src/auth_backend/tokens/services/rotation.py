"""Exchanging a refresh token for a new pair; a used token presented again is reuse.

Rotations of one family serialize on the family's row lock, so two concurrent uses of one
token give exactly one success; the other is reuse, and the family is revoked.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from auth_backend.core import tracing
from auth_backend.core.metrics import REFRESH_TOKEN_REUSE, TOKEN_REFRESHES
from auth_backend.tokens.exceptions import InvalidRefreshToken
from auth_backend.tokens.models import RefreshToken
from auth_backend.tokens.selectors import active_user_by_id, refresh_token_by_hash, user_not_before
from auth_backend.tokens.services.issuing import (
    TokenPair,
    count_issued_pair,
    hash_refresh_token,
    issue_access_token,
    looks_like_refresh_token,
    new_refresh_token,
)
from auth_backend.tokens.services.revoking import RevokeReason, lock_family, revoke_families

log = logging.getLogger(__name__)


@tracing.traced("tokens.refresh")
def rotate_refresh_token(raw_refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; see the module docstring for reuse.

    Raises :class:`InvalidRefreshToken` for anything but a live, unused, unexpired token of
    an active user. On reuse, the family revocation is committed before raising. Each call
    is counted once in ``auth_token_refresh_total`` by result (backend/docs/metrics.md).
    """
    try:
        pair = _rotate_refresh_token(raw_refresh_token)
    except _RefreshRevoked as revoked:
        TOKEN_REFRESHES.labels(result=revoked.outcome).inc()
        if revoked.outcome == RevokeReason.REUSE:
            REFRESH_TOKEN_REUSE.inc()
        raise InvalidRefreshToken() from None
    except InvalidRefreshToken:
        TOKEN_REFRESHES.labels(result="invalid").inc()
        raise
    TOKEN_REFRESHES.labels(result="success").inc()
    count_issued_pair()
    return pair


class _RefreshRevoked(InvalidRefreshToken):
    """A rotation that revoked its family (reuse or cut-off); the caller sees the same 401."""

    def __init__(self, outcome: str) -> None:
        super().__init__()
        self.outcome = outcome


def _rotate_refresh_token(raw_refresh_token: str) -> TokenPair:
    if not looks_like_refresh_token(raw_refresh_token):
        raise InvalidRefreshToken()
    found = refresh_token_by_hash(hash_refresh_token(raw_refresh_token))
    if found is None:
        raise InvalidRefreshToken()

    with transaction.atomic():
        family = lock_family(found.family_id)
        # Re-read under the family lock: a concurrent rotation may have just used it.
        token = RefreshToken.objects.get(pk=found.pk)
        now = timezone.now()
        if family.is_revoked or token.revoked_at is not None:
            raise InvalidRefreshToken()
        if token.used_at is not None:
            # Committed below, *then* raised: the revocation must survive the error.
            revoke_families([family], user_id=family.user_id, reason=RevokeReason.REUSE, now=now)
            outcome = RevokeReason.REUSE
        else:
            if token.expires_at <= now:
                raise InvalidRefreshToken()
            user = active_user_by_id(family.user_id)
            if user is None:
                raise InvalidRefreshToken()
            cutoff = user_not_before(user.pk)
            if cutoff is not None and family.created_at < cutoff:
                # Started before a "sign out everywhere" but committed after it: dead too.
                revoke_families([family], user_id=user.pk, reason=RevokeReason.CUTOFF, now=now)
                outcome = RevokeReason.CUTOFF
            else:
                token.used_at = now
                token.save(update_fields=["used_at"])
                with tracing.span(
                    "tokens.issue", {"tokens.grant": "refresh_token", "auth.amr": list(family.amr)}
                ):
                    refresh_token = new_refresh_token(family, now)
                    access_token, expires_in = issue_access_token(user, family)
                outcome = ""
    if outcome == RevokeReason.REUSE:
        log.warning(
            "refresh token reuse detected; session revoked",
            extra={"sub": str(family.user_id), "sid": str(family.pk)},
        )
    if outcome:
        tracing.set_attributes({"tokens.revoked": outcome})
        raise _RefreshRevoked(outcome)
    return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)
