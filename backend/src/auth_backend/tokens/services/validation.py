"""Checking an access token as the edge would, plus what only the database knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings

from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.keys import signing_keys
from auth_backend.tokens.selectors import access_token_record, active_user_by_id, user_not_before
from auth_backend.tokens.services.issuing import TOKEN_USE_ACCESS, TokenSubject, epoch

MAX_ACCESS_TOKEN_LENGTH = 8192


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


# PyJWT's refusals and the reasons they are reported as; checked in order, and any other
# InvalidTokenError is "malformed".
_DECODE_REFUSALS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "bad_signature"),
)


def validate_access_token(token: object) -> AccessClaims:
    """Check an access token as the edge would, plus what only the database knows.

    Signature against a published key (current or previous), ``iss``, ``aud``,
    ``exp``/``nbf``/``iat``, ``token_use == "access"``, not revoked (its ``jti`` or session,
    or issued before the user's not-before cut-off) and an active user.
    Raises :class:`InvalidAccessToken` with a ``reason``.
    """
    claims = _signed_claims(token)
    user = _live_user_of(claims)
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


def _signed_claims(token: object) -> dict[str, Any]:
    """The claims of a token signed by one of our published keys, for us, now valid."""
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
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.algorithm],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options={"require": ["iss", "aud", "sub", "jti", "iat", "nbf", "exp"]},
        )
    except jwt.InvalidTokenError as refused:
        reason = next(
            (name for kind, name in _DECODE_REFUSALS if isinstance(refused, kind)),
            "malformed",
        )
        raise InvalidAccessToken(reason) from None
    if claims.get("token_use") != TOKEN_USE_ACCESS:
        raise InvalidAccessToken("wrong_token_use")
    return claims


def _live_user_of(claims: dict[str, Any]) -> TokenSubject:
    """The active user of a token we issued and did not revoke (what only the database knows)."""
    record = access_token_record(claims["jti"])
    if record is None or str(record.user_id) != claims["sub"]:
        raise InvalidAccessToken("unknown_token")
    if record.revoked_at is not None or record.family.is_revoked:
        raise InvalidAccessToken("revoked")
    cutoff = user_not_before(record.user_id)
    if cutoff is not None and (claims["iat"] < epoch(cutoff) or record.family.created_at < cutoff):
        raise InvalidAccessToken("revoked")
    user = active_user_by_id(claims["sub"])
    if user is None:
        raise InvalidAccessToken("inactive_user")
    return user
