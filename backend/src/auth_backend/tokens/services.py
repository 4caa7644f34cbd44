"""Issuing, rotating, revoking and validating tokens.

Access token
    JWT signed with the current signing key (RS256 by default), ``kid`` in the header.
    Claims: ``iss`` (``JWT_ISSUER``), ``aud`` (``JWT_AUDIENCE``), ``sub`` (user UUID),
    ``email``, ``roles`` (``["user", "seller"?, "staff"?]``), ``scope`` (space separated:
    ``profile`` for everyone, plus ``seller`` for sellers), ``jti`` (UUID), ``sid`` (the
    refresh family = sign-in session), ``iat``, ``nbf`` (= ``iat``), ``exp`` (``iat`` +
    ``ACCESS_TOKEN_TTL_SECONDS``), ``token_use: "access"``, ``amr`` (RFC 8176 methods of the
    login: ``["pwd"]``, ``["pwd", "otp"]``, ``["google"]``, ...). Every issued ``jti`` is
    recorded with its family so a revocation can name it (``docs/revocation.md``).

Refresh token
    Opaque ``secrets.token_urlsafe(32)``; only its SHA-256 is stored. Each use rotates it:
    the presented token is marked used and a successor in the same family is returned with a
    new access token. Presenting a used token again is reuse — someone else holds a copy —
    so the whole family is revoked. Rotations of one family serialize on a row lock of the
    family, so two concurrent uses of the same token give exactly one success; the other is
    reuse. Refresh tokens expire ``REFRESH_TOKEN_TTL_SECONDS`` after they were issued (a
    sliding window: each rotation starts a new one).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException

from auth_backend.core import tracing
from auth_backend.core.errors import INVALID_TOKEN_CHALLENGE
from auth_backend.core.metrics import (
    LOGOUTS,
    REFRESH_TOKEN_REUSE,
    TOKEN_REFRESHES,
    TOKENS_ISSUED,
)
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens import revocation as revocations
from auth_backend.tokens.keys import signing_keys
from auth_backend.tokens.models import (
    AccessTokenRecord,
    RefreshFamily,
    RefreshToken,
    TokenNotBefore,
)
from auth_backend.tokens.selectors import (
    access_token_record,
    active_user_by_id,
    refresh_token_by_hash,
    unexpired_access_tokens,
    user_not_before,
)

log = logging.getLogger(__name__)

TOKEN_USE_ACCESS = "access"  # noqa: S105 - a claim value
REFRESH_TOKEN_BYTES = 32
MAX_REFRESH_TOKEN_LENGTH = 512
MAX_ACCESS_TOKEN_LENGTH = 8192
SCOPE_PROFILE = "profile"
SCOPE_SELLER = "seller"


class RevokeReason:
    LOGOUT = "logout"
    REUSE = "reuse"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason name
    DEACTIVATION = "deactivation"
    # A session started before the user's not-before cut-off, found at its next rotation.
    CUTOFF = "cutoff"


class TokenSubject(Protocol):
    """What tokens read of a user. The model is ``settings.AUTH_USER_MODEL``, owned by the
    accounts app, which calls into this one (never the other way round)."""

    pk: Any
    email: str
    is_seller: bool

    @property
    def roles(self) -> list[str]: ...


# --- errors ----------------------------------------------------------------------------------


class TokenError(APIException):
    """Base of the token errors: 401 with an RFC 6750 challenge."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_token"
    default_detail = "The token is invalid."
    auth_header = INVALID_TOKEN_CHALLENGE


class InvalidRefreshToken(TokenError):
    """Unknown, expired, used or revoked refresh token — deliberately indistinguishable."""

    default_code = "invalid_refresh_token"
    default_detail = "The refresh token is invalid, expired or revoked."


class InvalidAccessToken(TokenError):
    """An access token this service would not accept; ``reason`` says why (internal callers).

    Reasons: ``malformed``, ``unknown_key``, ``bad_signature``, ``expired``,
    ``not_yet_valid``, ``wrong_issuer``, ``wrong_audience``, ``missing_claim``,
    ``wrong_token_use``, ``unknown_token``, ``revoked``, ``inactive_user``.
    """

    default_code = "invalid_token"
    default_detail = "The access token is invalid."

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
        self.details = {"reason": reason}


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret

    def as_response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True)
class AccessClaims:
    """A validated access token."""

    sub: str
    email: str
    roles: tuple[str, ...]
    scope: str
    jti: str
    sid: str
    iat: int
    exp: int
    amr: tuple[str, ...]
    user: TokenSubject = field(compare=False, repr=False)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())


# --- helpers ---------------------------------------------------------------------------------


def hash_refresh_token(raw_refresh_token: str) -> str:
    return hashlib.sha256(raw_refresh_token.encode("utf-8")).hexdigest()


def scopes_for(user: TokenSubject) -> list[str]:
    """``profile`` for every user, ``seller`` for sellers (edge routes may require these)."""
    scopes = [SCOPE_PROFILE]
    if user.is_seller:
        scopes.append(SCOPE_SELLER)
    return scopes


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _looks_like_refresh_token(raw: object) -> bool:
    return isinstance(raw, str) and 0 < len(raw) <= MAX_REFRESH_TOKEN_LENGTH


def _new_refresh_token(family: RefreshFamily, now: datetime) -> str:
    raw = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    RefreshToken.objects.create(
        family=family,
        user_id=family.user_id,
        token_hash=hash_refresh_token(raw),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
    )
    return raw


def _issue_access_token(user: TokenSubject, family: RefreshFamily) -> tuple[str, int]:
    """Sign an access token for ``user`` in ``family`` and record its ``jti``."""
    key = signing_keys.current()
    ttl = settings.ACCESS_TOKEN_TTL_SECONDS
    iat = int(time.time())
    jti = str(uuid.uuid4())
    claims = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": str(user.pk),
        "email": user.email,
        "roles": user.roles,
        "scope": " ".join(scopes_for(user)),
        "jti": jti,
        "sid": str(family.pk),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "token_use": TOKEN_USE_ACCESS,
        "amr": list(family.amr),
    }
    private_key = key.private_key
    assert private_key is not None  # current() refuses a key whose private half is unusable
    token = jwt.encode(claims, private_key, algorithm=key.algorithm, headers={"kid": key.kid})
    AccessTokenRecord.objects.create(
        jti=jti,
        family=family,
        user_id=user.pk,
        issued_at=_from_epoch(iat),
        expires_at=_from_epoch(iat + ttl),
    )
    return token, ttl


def _revoke_families(
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
            exp=max((_epoch(exp) for _, exp in live_access), default=None),
            not_before=_epoch(not_before) if not_before is not None else None,
            sids=tuple(str(family_id) for family_id in family_ids),
        )
    )


def _lock_family(family_id: uuid.UUID) -> RefreshFamily:
    return RefreshFamily.objects.select_for_update().get(pk=family_id)


# --- public API ------------------------------------------------------------------------------


def issue_token_pair(user: TokenSubject, *, amr: Sequence[str] = ("pwd",)) -> TokenPair:
    """Start a new session (refresh family) for an authenticated user and return its tokens.

    Callers have already authenticated ``user`` (password, 2FA, Google); ``amr`` records how.
    """
    with (
        tracing.span("tokens.issue", {"tokens.grant": "login", "auth.amr": list(amr)}),
        transaction.atomic(),
    ):
        now = timezone.now()
        family = RefreshFamily.objects.create(user_id=user.pk, amr=list(amr), created_at=now)
        refresh_token = _new_refresh_token(family, now)
        access_token, expires_in = _issue_access_token(user, family)
    _count_issued_pair()
    return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)


def _count_issued_pair() -> None:
    TOKENS_ISSUED.labels(kind="access").inc()
    TOKENS_ISSUED.labels(kind="refresh").inc()


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
    _count_issued_pair()
    return pair


class _RefreshRevoked(InvalidRefreshToken):
    """A rotation that revoked its family (reuse or cut-off); the caller sees the same 401."""

    def __init__(self, outcome: str) -> None:
        super().__init__()
        self.outcome = outcome


def _rotate_refresh_token(raw_refresh_token: str) -> TokenPair:
    if not _looks_like_refresh_token(raw_refresh_token):
        raise InvalidRefreshToken()
    found = refresh_token_by_hash(hash_refresh_token(raw_refresh_token))
    if found is None:
        raise InvalidRefreshToken()

    with transaction.atomic():
        family = _lock_family(found.family_id)
        # Re-read under the family lock: a concurrent rotation may have just used it.
        token = RefreshToken.objects.get(pk=found.pk)
        now = timezone.now()
        if family.is_revoked or token.revoked_at is not None:
            raise InvalidRefreshToken()
        if token.used_at is not None:
            # Committed below, *then* raised: the revocation must survive the error.
            _revoke_families([family], user_id=family.user_id, reason=RevokeReason.REUSE, now=now)
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
                _revoke_families([family], user_id=user.pk, reason=RevokeReason.CUTOFF, now=now)
                outcome = RevokeReason.CUTOFF
            else:
                token.used_at = now
                token.save(update_fields=["used_at"])
                with tracing.span(
                    "tokens.issue", {"tokens.grant": "refresh_token", "auth.amr": list(family.amr)}
                ):
                    refresh_token = _new_refresh_token(family, now)
                    access_token, expires_in = _issue_access_token(user, family)
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


def revoke_family_of(raw_refresh_token: str, *, reason: str) -> None:
    """Revoke the session a refresh token belongs to. Unknown or revoked tokens: no-op."""
    _revoke_family_of_refresh_token(raw_refresh_token, reason=reason)


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
        _revoke_families(families, user_id=user.pk, reason=reason, now=now, not_before=now)


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
            if _looks_like_refresh_token(refresh_token):
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


def _family_belongs_to(family_id: uuid.UUID, user: TokenSubject) -> bool:
    return RefreshFamily.objects.filter(pk=family_id, user_id=user.pk).exists()


def _revoke_family_of_refresh_token(raw: str, *, reason: str) -> RefreshFamily | None:
    if not _looks_like_refresh_token(raw):
        return None
    token = refresh_token_by_hash(hash_refresh_token(raw))
    if token is None:
        return None
    return _revoke_family(token.family_id, reason=reason)


def _revoke_family(family_id: uuid.UUID, *, reason: str) -> RefreshFamily | None:
    """Revoke one family; the family if it was live, else ``None``."""
    with transaction.atomic():
        family = _lock_family(family_id)
        if family.is_revoked:
            return None
        _revoke_families([family], user_id=family.user_id, reason=reason, now=timezone.now())
        return family


def validate_access_token(token: object) -> AccessClaims:
    """Check an access token as the edge would, plus what only the database knows.

    Signature against a published key (current or previous), ``iss``, ``aud``,
    ``exp``/``nbf``/``iat``, ``token_use == "access"``, not revoked (its ``jti`` or session,
    or issued before the user's not-before cut-off) and an active user.
    Raises :class:`InvalidAccessToken` with a ``reason``.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_ACCESS_TOKEN_LENGTH:
        raise InvalidAccessToken("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidAccessToken("malformed") from None
    kid = header.get("kid")
    key = signing_keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidAccessToken("unknown_key")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.algorithm],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options={"require": ["iss", "aud", "sub", "jti", "iat", "nbf", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidAccessToken("expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidAccessToken("not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise InvalidAccessToken("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidAccessToken("wrong_issuer") from None
    except jwt.MissingRequiredClaimError:
        raise InvalidAccessToken("missing_claim") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise InvalidAccessToken("bad_signature") from None
    except jwt.InvalidTokenError:
        raise InvalidAccessToken("malformed") from None
    if claims.get("token_use") != TOKEN_USE_ACCESS:
        raise InvalidAccessToken("wrong_token_use")

    record = access_token_record(claims["jti"])
    if record is None or str(record.user_id) != claims["sub"]:
        raise InvalidAccessToken("unknown_token")
    if record.revoked_at is not None or record.family.is_revoked:
        raise InvalidAccessToken("revoked")
    cutoff = user_not_before(record.user_id)
    if cutoff is not None and (claims["iat"] < _epoch(cutoff) or record.family.created_at < cutoff):
        raise InvalidAccessToken("revoked")
    user = active_user_by_id(claims["sub"])
    if user is None:
        raise InvalidAccessToken("inactive_user")
    return AccessClaims(
        sub=claims["sub"],
        email=str(claims.get("email", "")),
        roles=tuple(claims.get("roles") or ()),
        scope=str(claims.get("scope", "")),
        jti=claims["jti"],
        sid=str(claims.get("sid", "")),
        iat=int(claims["iat"]),
        exp=int(claims["exp"]),
        amr=tuple(claims.get("amr") or ()),
        user=user,
    )


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
