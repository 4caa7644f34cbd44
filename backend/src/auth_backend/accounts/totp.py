"""TOTP (RFC 6238) with pyotp: 6 digits, SHA-1, 30 s steps — what authenticator apps use.

:func:`matching_step` returns *which* time step a code belongs to (pyotp's ``verify`` only
says yes or no), so services can store the last accepted step and refuse a code of that step
or any earlier one: a code works once, even inside its validity window.
"""

from __future__ import annotations

import hmac
import re
import time

import pyotp

DIGITS = 6
INTERVAL_SECONDS = 30
# Accept the previous and the next step too (clock drift between phone and server).
VALID_WINDOW = 1
# A code is exactly DIGITS ASCII digits. str.isdigit() (and \d in a str pattern) also accept
# fullwidth, Arabic-Indic, superscript … digits, which hmac.compare_digest then refuses with
# a TypeError on non-ASCII str. Only [0-9] is a code (RFC 4226 §5.3: the value is
# Snum mod 10^Digit, shown as decimal digits; authenticator apps show ASCII).
CODE_PATTERN = re.compile(rf"[0-9]{{{DIGITS}}}")


def now() -> float:
    """The clock TOTP uses (a seam for tests: monkeypatch this, not ``time.time``)."""
    return time.time()


def new_secret() -> str:
    """A fresh 160-bit base32 secret (RFC 4226 recommends at least 128 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, *, account_name: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app imports (usually as a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_SECONDS).provisioning_uri(
        name=account_name, issuer_name=issuer
    )


def is_code(value: object) -> bool:
    """Whether ``value`` has the form of a code: :data:`DIGITS` ASCII digits, nothing else."""
    return isinstance(value, str) and CODE_PATTERN.fullmatch(value) is not None


def matching_step(secret: str, code: str, *, at: float | None = None) -> int | None:
    """The time step (±:data:`VALID_WINDOW`) whose code equals ``code``, else ``None``.

    Compared in constant time; every candidate step is checked so the timing does not tell
    which one matched. Anything but exactly :data:`DIGITS` ASCII digits is no code
    (:func:`is_code`), so the comparison only ever sees ASCII.
    """
    if not secret or not is_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_SECONDS)
    current = totp.timecode(now() if at is None else at)
    found: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        expected = totp.generate_otp(step).encode("ascii")
        if hmac.compare_digest(expected, code.encode("ascii")) and found is None:
            found = step
    return found
