"""The emails the accounts app sends: plain text, the raw token in one greppable line.

This is an API: the email carries the code itself, no link; a front end asks the user to
paste it (or builds its own link). With the console backend of local runs (``make run``)
the whole email is printed to the backend's stdout, so a developer finds the code with::

    make run | grep 'verification token:'        # or 'password reset token:'

Delivery failures are logged and swallowed: the account change is already committed and the
user can ask for a new email (``resend-verification``, ``password/reset``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail

from auth_backend.accounts.models import User

log = logging.getLogger(__name__)

VERIFICATION_LINE = "verification token: {token}"
PASSWORD_RESET_LINE = "password reset token: {token}"  # noqa: S105 - a template


def _hours(seconds: int) -> str:
    hours = timedelta(seconds=seconds).total_seconds() / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")


def _send(user: User, subject: str, body: str, kind: str) -> bool:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    except OSError:  # smtplib.SMTPException and socket errors
        log.exception("could not send %s email", kind, extra={"sub": str(user.pk)})
        return False
    return True


def send_verification_email(user: User, token: str) -> bool:
    ttl = _hours(settings.EMAIL_VERIFICATION_TOKEN_TTL_SECONDS)
    body = (
        "Welcome!\n\n"
        "Confirm your email address by sending this code to POST /api/auth/verify-email "
        f"within {ttl}. It works once.\n\n"
        f"{VERIFICATION_LINE.format(token=token)}\n\n"
        "If you did not create an account, ignore this email.\n"
    )
    return _send(user, "Verify your email address", body, "verification")


def send_registration_notice_email(user: User) -> bool:
    """To the owner of an address someone tried to register again (no code in it)."""
    body = (
        "Someone tried to create an account with this email address, which already has "
        "one. Nothing was changed.\n\n"
        "If it was you: sign in with your password, or choose a new one with "
        "POST /api/auth/password/reset if you do not remember it.\n\n"
        "If it was not you, ignore this email.\n"
    )
    return _send(
        user, "Someone tried to register with your email address", body, "registration notice"
    )


def send_password_reset_email(user: User, token: str) -> bool:
    ttl = _hours(settings.PASSWORD_RESET_TOKEN_TTL_SECONDS)
    body = (
        "Someone asked to reset the password of your account.\n\n"
        "To choose a new password, send this code with the new password to "
        f"POST /api/auth/password/reset/confirm within {ttl}. It works once, and signs "
        "you out everywhere.\n\n"
        f"{PASSWORD_RESET_LINE.format(token=token)}\n\n"
        "If it was not you, ignore this email: your password stays as it is.\n"
    )
    return _send(user, "Reset your password", body, "password reset")
