"""The second factor: a TOTP code or a recovery code, under one budget of wrong codes.

A login challenge allows ``LOGIN_CHALLENGE_MAX_ATTEMPTS`` wrong codes, but a right password
opens a new challenge, so a challenge alone does not bound guessing. The budget does: at
most ``TWO_FACTOR_FAILURE_LIMIT`` wrong codes per account in a window of
``TWO_FACTOR_FAILURE_WINDOW_SECONDS`` (a fixed window that starts at its first wrong code),
counted across every challenge, ``2fa/disable`` and ``2fa/recovery-codes``. A spent budget
refuses every code -- the right one too, so guessing learns nothing -- with 429 until the
window ends. 10 wrong codes per 15 minutes give a guesser of a 6-digit code (3 codes
accepted per try: ±1 step) about 3·10^-5 per window, ~0.3 % a month.

The counter lives on the user row (``User.second_factor_failures``), updated under the row
lock every caller already holds, in the same transaction as the challenge's own counter --
no Redis, so it cannot fail open.

Recovery codes (``RecoveryCode``): 10 per account, ``xxxxx-xxxxx`` from the base32 alphabet
(50 random bits), stored as SHA-256 of the normalised code, single use; accepted wherever a
TOTP code is for the login step, disabling and regenerating, never for enabling.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.crypto import salted_hmac

from auth_backend.accounts import totp
from auth_backend.accounts.exceptions import TwoFactorThrottled
from auth_backend.accounts.models import LoginChallenge, RecoveryCode, User
from auth_backend.core.metrics import TWO_FACTOR_BUDGET_REFUSALS

RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_RECOVERY_HALF = 5
# What a client may send: two halves, optionally joined by "-", any case.
RECOVERY_CODE_PATTERN = f"[A-Za-z2-7]{{{_RECOVERY_HALF}}}-?[A-Za-z2-7]{{{_RECOVERY_HALF}}}"
_RECOVERY_RE = re.compile(RECOVERY_CODE_PATTERN)
RECOVERY_CODE_MAX_LENGTH = 2 * _RECOVERY_HALF + 1


def is_recovery_code(value: object) -> bool:
    return isinstance(value, str) and _RECOVERY_RE.fullmatch(value) is not None


def _normalised(code: str) -> str:
    return code.replace("-", "").lower()


def _hash(code: str) -> str:
    return hashlib.sha256(_normalised(code).encode()).hexdigest()


# --- the budget ------------------------------------------------------------------------------


def _window() -> timedelta:
    return timedelta(seconds=max(settings.TWO_FACTOR_FAILURE_WINDOW_SECONDS, 1))


def _failures_in_window(user: User, now: datetime) -> int:
    since = user.second_factor_failures_since
    if since is None or since + _window() <= now:
        return 0
    return user.second_factor_failures


def check_budget(user: User, now: datetime, *, operation: str) -> None:
    """Raise :class:`TwoFactorThrottled` if the (locked) user's budget is spent."""
    if _failures_in_window(user, now) < max(settings.TWO_FACTOR_FAILURE_LIMIT, 1):
        return
    assert user.second_factor_failures_since is not None
    remaining = (user.second_factor_failures_since + _window() - now).total_seconds()
    TWO_FACTOR_BUDGET_REFUSALS.labels(operation=operation).inc()
    raise TwoFactorThrottled(max(math.ceil(remaining), 1))


def spend_budget(user: User, now: datetime) -> None:
    """Count one wrong code against the (locked) user's budget; saved at once."""
    if _failures_in_window(user, now) == 0:
        user.second_factor_failures_since = now
        user.second_factor_failures = 0
    user.second_factor_failures += 1
    user.save(update_fields=["second_factor_failures", "second_factor_failures_since"])


# --- codes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A code that was accepted: the TOTP step it was for, or ``None`` for a recovery code."""

    totp_step: int | None


def accept_totp_code(user: User, code: str) -> int | None:
    """The step of a valid, not yet used code for the (locked) user's secret, else ``None``."""
    step = totp.matching_step(user.totp_secret, code)
    if step is None:
        return None
    if user.last_totp_step is not None and step <= user.last_totp_step:
        return None  # replay: this code (or a later one) was already accepted
    return step


def accept(user: User, code: str, now: datetime) -> Accepted | None:
    """Accept a TOTP code (its step recorded) or spend a recovery code of the (locked) user.

    ``None`` for a wrong, replayed or used code; the caller spends the budget. A right code
    refills it.
    """
    accepted: Accepted | None = None
    if totp.is_code(code):
        step = accept_totp_code(user, code)
        if step is not None:
            user.last_totp_step = step
            accepted = Accepted(totp_step=step)
    elif is_recovery_code(code):
        used = RecoveryCode.objects.filter(
            user=user, code_hash=_hash(code), used_at__isnull=True
        ).update(used_at=now)
        accepted = Accepted(totp_step=None) if used else None
    if accepted is not None:  # the owner: the budget starts afresh
        user.second_factor_failures = 0
        user.second_factor_failures_since = None
        user.save(
            update_fields=[
                "last_totp_step",
                "second_factor_failures",
                "second_factor_failures_since",
            ]
        )
    return accepted


def new_recovery_codes(user: User, now: datetime) -> list[str]:
    """Replace the (locked) user's recovery codes; the raw codes, to be shown once."""
    codes = [
        "-".join(
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_HALF))
            for _ in range(2)
        )
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=_hash(code), created_at=now) for code in codes
    )
    return codes


def drop_recovery_codes(user: User) -> None:
    RecoveryCode.objects.filter(user=user).delete()


# --- login challenges ------------------------------------------------------------------------


def credentials_fingerprint(user: User) -> str:
    """An HMAC of what proves the account (password hash, TOTP secret) at this moment."""
    return salted_hmac(
        "auth_backend.accounts.second_factor",
        f"{user.password}\x00{user.totp_secret}",
        algorithm="sha256",
    ).hexdigest()


def end_login_challenges(user: User, now: datetime) -> int:
    """End every pending login challenge of ``user`` (password reset or change, 2FA off)."""
    return LoginChallenge.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
