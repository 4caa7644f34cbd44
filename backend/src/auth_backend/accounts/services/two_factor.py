"""TOTP two-factor authentication (RFC 6238): setup, enabling, disabling, recovery codes.

Codes and the per-account budget of wrong codes: :mod:`.second_factor`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth_backend.accounts import totp
from auth_backend.accounts.exceptions import (
    InvalidTwoFactorCode,
    TwoFactorAlreadyEnabled,
    TwoFactorNotEnabled,
    TwoFactorSetupRequired,
)
from auth_backend.accounts.models import User
from auth_backend.accounts.selectors import locked_user
from auth_backend.accounts.services import second_factor
from auth_backend.accounts.services.second_factor import accept_totp_code
from auth_backend.events.services import EventType, record_event

__all__ = [
    "TwoFactorSetup",
    "accept_totp_code",
    "disable_two_factor",
    "enable_two_factor",
    "regenerate_recovery_codes",
    "start_two_factor_setup",
]

T = TypeVar("T")


@dataclass(frozen=True)
class TwoFactorSetup:
    secret: str
    otpauth_uri: str


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


def enable_two_factor(user: User, *, code: str) -> tuple[User, list[str]]:
    """Turn 2FA on with a code from the pending secret (proves the app has it).

    Returns the user and its new recovery codes, to be shown once.
    """
    with transaction.atomic():
        locked = locked_user(user)
        if locked.totp_enabled:
            raise TwoFactorAlreadyEnabled()
        if not locked.totp_secret:
            raise TwoFactorSetupRequired()
        step = accept_totp_code(locked, code)
        if step is None:
            raise InvalidTwoFactorCode()
        locked.totp_enabled = True
        locked.last_totp_step = step
        locked.save(update_fields=["totp_enabled", "last_totp_step"])
        codes = second_factor.new_recovery_codes(locked, timezone.now())
        record_event(EventType.TWO_FACTOR_ENABLED, subject_id=str(locked.pk))
    return locked, codes


def _with_second_factor(
    user: User, code: str, *, operation: str, change: Callable[[User, datetime], T]
) -> T:
    """``change`` the (locked) user if ``code`` is a right TOTP or recovery code.

    Under the account's budget of wrong codes: a spent budget is a 429
    (:class:`TwoFactorThrottled`); a wrong code is counted, committed, then a 400
    :class:`InvalidTwoFactorCode`.
    """
    failure: InvalidTwoFactorCode | None = None
    with transaction.atomic():
        locked = locked_user(user)
        if not locked.totp_enabled:
            raise TwoFactorNotEnabled()
        now = timezone.now()
        second_factor.check_budget(locked, now, operation=operation)
        if second_factor.accept(locked, code, now) is None:
            second_factor.spend_budget(locked, now)
            failure = InvalidTwoFactorCode()
        else:
            return change(locked, now)
    raise failure


def disable_two_factor(user: User, *, code: str) -> User:
    """Turn 2FA off with a current code or a recovery code; the secret, the recovery codes
    and every pending login challenge are discarded."""

    def disable(locked: User, now: datetime) -> User:
        locked.totp_enabled = False
        locked.totp_secret = ""
        locked.save(update_fields=["totp_enabled", "totp_secret"])
        second_factor.drop_recovery_codes(locked)
        second_factor.end_login_challenges(locked, now)
        record_event(EventType.TWO_FACTOR_DISABLED, subject_id=str(locked.pk))
        return locked

    return _with_second_factor(user, code, operation="disable", change=disable)


def regenerate_recovery_codes(user: User, *, code: str) -> list[str]:
    """New recovery codes for a current code or a recovery code; the old ones stop working."""
    return _with_second_factor(
        user, code, operation="recovery_codes", change=second_factor.new_recovery_codes
    )
