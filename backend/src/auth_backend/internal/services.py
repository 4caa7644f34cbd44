"""Internal API operations that are more than a query: token introspection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from auth_backend.core.metrics import JWT_VALIDATIONS
from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.services.validation import validate_access_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Introspection:
    """An RFC 7662-style answer about an access token.

    An inactive token says nothing else (RFC 7662 §2.2: no hints about why); the reason is
    logged here for operators instead.
    """

    active: bool
    sub: str = ""
    email: str = ""
    roles: tuple[str, ...] = ()
    scope: str = ""
    exp: int = 0
    jti: str = ""

    def as_response(self) -> dict[str, Any]:
        if not self.active:
            return {"active": False}
        return {
            "active": True,
            "sub": self.sub,
            "email": self.email,
            "roles": list(self.roles),
            "scope": self.scope,
            "exp": self.exp,
            "jti": self.jti,
        }


def introspect_access_token(token: str) -> Introspection:
    """Whether ``token`` is an access token this service would accept right now.

    Delegates every check (signature, issuer, audience, expiry, revocation, active user) to
    ``tokens.services.validation.validate_access_token``. A bad token is an answer, not an
    error: the caller asked a question about it.
    """
    try:
        claims = validate_access_token(token)
    except InvalidAccessToken as exc:
        log.info("introspected token is inactive", extra={"reason": exc.reason})
        JWT_VALIDATIONS.labels(result=exc.reason).inc()
        return Introspection(active=False)
    JWT_VALIDATIONS.labels(result="valid").inc()
    return Introspection(
        active=True,
        sub=claims.sub,
        email=claims.email,
        roles=claims.roles,
        scope=claims.scope,
        exp=claims.exp,
        jti=claims.jti,
    )
