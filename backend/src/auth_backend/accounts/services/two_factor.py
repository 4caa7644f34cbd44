"""TOTP two-factor authentication (RFC 6238): setup, enabling, disabling, code acceptance."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from auth_backend.accounts import totp
from auth_backend.accounts.exceptions import (
    InvalidTwoFactorCode,
    TwoFactorAlreadyEnabled,
    TwoFactorNotEnabled,
    TwoFactorSetupRequired,
)
from auth_backend.accounts.models import User
from auth_backend.accounts.selectors import locked_user
from auth_backend.events.services import EventType, record_event


@dataclass(frozen=True)
class TwoFactorSetup:
    secret: str
    otpauth_uri: str


def accept_totp_code(user: User, code: str) -> int | None:
    """The step of a valid, not yet used code for the (locked) user's secret, else ``None``."""
    step = totp.matching_step(user.totp_secret, code)
    if step is None:
        return None
    if user.last_totp_step is not None and step <= user.last_totp_step:
        return None  # replay: this code (or a later one) was already accepted
    return step


def _required_step(user: User, code: str) -> int:
    """:func:`accept_totp_code` for a settings change: a code it refuses is an error."""
    step = accept_totp_code(user, code)
    if step is None:
        raise InvalidTwoFactorCode()
    return step


def start_two_factor_setup(user: User) -> TwoFactorSetup:
    """Store a new pending TOTP secret (2FA stays off until :func:`enable_two_factor`).

    Refused while 2FA is on: replacing the active secret would lock the user out of their
    authenticator. Calling it again replaces the pending secret.
    """
    with transaction.atomic():
        locked = locked_user(user)
        if locked.totp_enabled:
            raise TwoFactorAlreadyEnabled()
        locked.totp_secret = totp.new_secret()
        locked.last_totp_step = None  # steps are per secret
        locked.save(update_fields=["totp_secret", "last_totp_step"])
    return TwoFactorSetup(
        secret=locked.totp_secret,
        otpauth_uri=totp.provisioning_uri(
            locked.totp_secret, account_name=locked.email, issuer=settings.TOTP_ISSUER
        ),
    )


def enable_two_factor(user: User, *, code: str) -> User:
    """Turn 2FA on with a code from the pending secret (proves the app has it)."""
    with transaction.atomic():
        locked = locked_user(user)
        if locked.totp_enabled:
            raise TwoFactorAlreadyEnabled()
        if not locked.totp_secret:
            raise TwoFactorSetupRequired()
        step = _required_step(locked, code)
        locked.totp_enabled = True
        locked.last_totp_step = step
        locked.save(update_fields=["totp_enabled", "last_totp_step"])
        record_event(EventType.TWO_FACTOR_ENABLED, subject_id=str(locked.pk))
    return locked


def disable_two_factor(user: User, *, code: str) -> User:
    """Turn 2FA off with a current code; the secret is discarded."""
    with transaction.atomic():
        locked = locked_user(user)
        if not locked.totp_enabled:
            raise TwoFactorNotEnabled()
        step = _required_step(locked, code)
        locked.totp_enabled = False
        locked.totp_secret = ""
        locked.last_totp_step = step
        locked.save(update_fields=["totp_enabled", "totp_secret", "last_totp_step"])
        record_event(EventType.TWO_FACTOR_DISABLED, subject_id=str(locked.pk))
    return locked
