"""Sign-in with a Google ID token.

Verification: RS256 signature against Google's JWKS (``GOOGLE_JWKS_URL``, fetched with
PyJWT's ``PyJWKClient`` and cached for ``GOOGLE_JWKS_CACHE_SECONDS``; an unknown ``kid``
triggers one refetch), ``iss`` ``accounts.google.com`` or ``https://accounts.google.com``,
``aud`` one of our client ids (``GOOGLE_CLIENT_ID``, comma-separated if there are several),
``exp``/``iat``, and ``email_verified`` true.

Linking, in this order:

1. a user whose ``google_sub`` is the token's ``sub``;
2. else the user with the token's (verified) email: ``google_sub`` is set. If that local
   account had never verified its email, whoever registered it never proved they own the
   address, so its password is discarded (made unusable) and the email marked verified —
   otherwise a squatter who pre-registered the victim's address could later log in with
   the password they chose (account pre-hijacking);
3. else a new user: email verified, unusable password, names from the token.

Then, like password login: tokens with ``amr: ["google"]``, or — when the user has TOTP on —
``{"requires_2fa": true, "challenge_token": …}`` from
:func:`~auth_backend.accounts.services.sign_in.create_login_challenge` and ``POST login/2fa``
finishes with ``amr: ["google", "otp"]``.

Errors (all in the service's error shape; classes in :mod:`auth_backend.accounts.exceptions`):

* 503 ``google_login_unavailable`` — ``GOOGLE_CLIENT_ID`` is not configured;
* 503 ``google_unavailable`` — Google's JWKS could not be fetched;
* 401 ``invalid_google_token`` — bad signature, issuer, audience, expired, malformed;
* 403 ``google_email_not_verified`` — Google has not verified the email;
* 409 ``google_account_conflict`` — the email's account is linked to another Google account;
* 403 ``account_disabled`` — the linked account is deactivated.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_backend.accounts.exceptions import (
    AccountDisabled,
    GoogleAccountConflict,
    GoogleEmailNotVerified,
    GoogleLoginUnavailable,
    GoogleUnavailable,
    InvalidGoogleToken,
)
from auth_backend.accounts.models import User, normalize_email
from auth_backend.accounts.services.sign_in import LoginResult, create_login_challenge
from auth_backend.core import tracing
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens.services.issuing import issue_token_pair

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
GOOGLE_ALGORITHMS = ["RS256"]
MAX_ID_TOKEN_LENGTH = 8192
AMR_GOOGLE = "google"


@dataclass(frozen=True)
class GoogleIdentity:
    sub: str
    email: str
    given_name: str
    family_name: str
    picture: str


def _client_ids() -> list[str]:
    return [item.strip() for item in settings.GOOGLE_CLIENT_ID.split(",") if item.strip()]


_clients_lock = threading.Lock()
_jwk_clients: dict[tuple[str, int, int], jwt.PyJWKClient] = {}


def _jwk_client() -> jwt.PyJWKClient:
    """One cached ``PyJWKClient`` per (URL, cache lifetime, timeout)."""
    config = (
        settings.GOOGLE_JWKS_URL,
        settings.GOOGLE_JWKS_CACHE_SECONDS,
        settings.GOOGLE_JWKS_TIMEOUT_SECONDS,
    )
    with _clients_lock:
        client = _jwk_clients.get(config)
        if client is None:
            client = jwt.PyJWKClient(
                config[0],
                cache_keys=True,
                cache_jwk_set=True,
                lifespan=max(config[1], 1),
                timeout=max(config[2], 1),
            )
            _jwk_clients[config] = client
        return client


@tracing.traced("google.verify")
def verify_google_id_token(id_token: object) -> GoogleIdentity:
    """The verified identity in a Google ID token (see the module docstring)."""
    client_ids = _client_ids()
    if not client_ids:
        raise GoogleLoginUnavailable()
    if not isinstance(id_token, str) or not id_token or len(id_token) > MAX_ID_TOKEN_LENGTH:
        raise InvalidGoogleToken()
    try:
        signing_key = _jwk_client().get_signing_key_from_jwt(id_token)
    except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError):
        log.warning("Google JWKS could not be fetched", extra={"url": settings.GOOGLE_JWKS_URL})
        raise GoogleUnavailable() from None
    except (jwt.PyJWKClientError, jwt.PyJWKError, jwt.InvalidTokenError):
        raise InvalidGoogleToken() from None
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            signing_key.key,
            algorithms=GOOGLE_ALGORITHMS,
            audience=client_ids,
            issuer=GOOGLE_ISSUERS,
            options={"require": ["iss", "aud", "sub", "exp", "iat"]},
        )
    except jwt.InvalidTokenError as exc:
        log.info("Google ID token rejected", extra={"error": type(exc).__name__})
        raise InvalidGoogleToken() from None
    sub = claims.get("sub")
    email = claims.get("email")
    if not isinstance(sub, str) or not sub or not isinstance(email, str) or "@" not in email:
        raise InvalidGoogleToken()
    # Google sends a JSON boolean; very old tokens carried the string "true".
    if claims.get("email_verified") not in (True, "true"):
        raise GoogleEmailNotVerified()
    return GoogleIdentity(
        sub=sub,
        email=normalize_email(email),
        given_name=str(claims.get("given_name") or "")[:150],
        family_name=str(claims.get("family_name") or "")[:150],
        picture=str(claims.get("picture") or ""),
    )


def _link_or_create(identity: GoogleIdentity) -> tuple[User, str]:
    """The user for this Google identity and how it was found: ``sub``, ``email``, ``created``."""
    user = User.objects.select_for_update().filter(google_sub=identity.sub).first()
    if user is not None:
        return user, "sub"
    user = User.objects.select_for_update().filter(email=identity.email).first()
    if user is not None:
        if user.google_sub:
            raise GoogleAccountConflict()
        user.google_sub = identity.sub
        fields = ["google_sub"]
        if not user.email_verified:
            user.email_verified_at = timezone.now()
            user.set_unusable_password()
            fields += ["email_verified_at", "password"]
        user.save(update_fields=fields)
        return user, "email"
    picture = identity.picture if len(identity.picture) <= 500 else ""
    user = User.objects.create_user(
        identity.email,
        password=None,
        first_name=identity.given_name,
        last_name=identity.family_name,
        avatar_url=picture,
        google_sub=identity.sub,
        email_verified_at=timezone.now(),
    )
    record_event(EventType.USER_REGISTERED, subject_id=str(user.pk), method="google")
    return user, "created"


@tracing.traced("accounts.login", **{"auth.method": "google"})
def google_login(id_token: str) -> dict[str, Any]:
    """Verify the ID token, find or create the user, and answer like password login.

    Returns the token pair response, or ``{"requires_2fa": true, "challenge_token": ...}``
    when the user has TOTP enabled (then ``POST login/2fa`` finishes the sign-in).
    """
    identity = verify_google_id_token(id_token)
    try:
        return _sign_in(identity)
    except IntegrityError:
        # A concurrent first sign-in created or linked the same user: it exists now.
        return _sign_in(identity)


def _sign_in(identity: GoogleIdentity) -> dict[str, Any]:
    with transaction.atomic():
        user, linked_by = _link_or_create(identity)
        if not user.is_active:
            raise AccountDisabled()
        if user.totp_enabled:
            # Same answer as password login; POST login/2fa issues tokens with amr google+otp.
            challenge = create_login_challenge(user, amr=(AMR_GOOGLE,))
            tracing.set_attributes(
                {"auth.outcome": "2fa_required", "auth.google.linked_by": linked_by}
            )
            return LoginResult(challenge_token=challenge).as_response()
        pair = issue_token_pair(user, amr=(AMR_GOOGLE,))
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        record_event(
            EventType.LOGIN_SUCCEEDED,
            subject_id=str(user.pk),
            amr=[AMR_GOOGLE],
            method="google",
            linked_by=linked_by,
        )
        tracing.set_attributes({"auth.outcome": "success", "auth.google.linked_by": linked_by})
        return pair.as_response()
