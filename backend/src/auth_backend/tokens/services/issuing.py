"""Starting a session: the token pair an authenticated user gets, and its two halves.

The formats are in the package docstring (:mod:`auth_backend.tokens.services`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth_backend.core import tracing
from auth_backend.core.metrics import TOKENS_ISSUED
from auth_backend.tokens.keys import signing_keys
from auth_backend.tokens.models import AccessTokenRecord, RefreshFamily, RefreshToken

TOKEN_USE_ACCESS = "access"  # noqa: S105 - a claim value
REFRESH_TOKEN_BYTES = 32
MAX_REFRESH_TOKEN_LENGTH = 512
SCOPE_PROFILE = "profile"
SCOPE_SELLER = "seller"


class TokenSubject(Protocol):
    """What tokens read of a user. The model is ``settings.AUTH_USER_MODEL``, owned by the
    accounts app, which calls into this one (never the other way round)."""

    pk: Any
    email: str
    is_seller: bool

    @property
    def roles(self) -> list[str]: ...


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
        refresh_token = new_refresh_token(family, now)
        access_token, expires_in = issue_access_token(user, family)
    count_issued_pair()
    return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)


def count_issued_pair() -> None:
    TOKENS_ISSUED.labels(kind="access").inc()
    TOKENS_ISSUED.labels(kind="refresh").inc()


def scopes_for(user: TokenSubject) -> list[str]:
    """``profile`` for every user, ``seller`` for sellers (edge routes may require these)."""
    scopes = [SCOPE_PROFILE]
    if user.is_seller:
        scopes.append(SCOPE_SELLER)
    return scopes


def hash_refresh_token(raw_refresh_token: str) -> str:
    return hashlib.sha256(raw_refresh_token.encode("utf-8")).hexdigest()


def looks_like_refresh_token(raw: object) -> bool:
    return isinstance(raw, str) and 0 < len(raw) <= MAX_REFRESH_TOKEN_LENGTH


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def new_refresh_token(family: RefreshFamily, now: datetime) -> str:
    """A fresh refresh token in ``family``; only its hash is stored."""
    raw = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    RefreshToken.objects.create(
        family=family,
        user_id=family.user_id,
        token_hash=hash_refresh_token(raw),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
    )
    return raw


def issue_access_token(user: TokenSubject, family: RefreshFamily) -> tuple[str, int]:
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


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
