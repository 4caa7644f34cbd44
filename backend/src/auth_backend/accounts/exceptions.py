"""Errors of the accounts endpoints. Each has a stable ``code`` clients branch on.

They are DRF ``APIException`` subclasses, rendered in the project's error shape by
:mod:`auth_backend.core.errors`; messages are ours, never an exception's text.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, Throttled

from auth_backend.core.errors import BEARER_CHALLENGE
from auth_backend.tokens.exceptions import TokenError


class InvalidOneTimeToken(APIException):
    """400: an emailed token that is unknown, already used or expired — indistinguishably."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_token"
    default_detail = "The token is invalid, expired or has already been used."


class InvalidCredentials(APIException):
    """401: unknown email, wrong password or inactive account — one answer for all three."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_credentials"
    default_detail = "The email address or password is incorrect."
    auth_header = BEARER_CHALLENGE


class LoginThrottled(Throttled):
    """429: too many failed sign-ins for this address; ``Retry-After`` says how long to wait.

    Code ``throttled`` (the shape's code for 429), ``details.retry_after`` in seconds. Unknown
    addresses are throttled alike, so this says nothing about whether an account exists.
    """

    default_code = "throttled"
    default_detail = "Too many failed sign-in attempts for this address; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(wait=retry_after)


class TwoFactorThrottled(Throttled):
    """429: the account's budget of wrong second-factor codes is spent (sign-in's 2FA step,
    ``2fa/disable``, ``2fa/recovery-codes``); ``Retry-After`` says when it is refilled."""

    default_code = "two_factor_throttled"
    default_detail = "Too many wrong authentication codes for this account; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(wait=retry_after)


class EmailNotVerified(APIException):
    """403: the password was right, but the email address is not verified yet.

    Only answered after a correct password, so it reveals nothing to someone who does not
    already hold the credentials.
    """

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_not_verified"
    default_detail = (
        "Verify your email address before signing in; POST resend-verification sends a new code."
    )


class ChallengeExpired(APIException):
    """401: the 2FA challenge is unknown, expired, used, or out of attempts."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "challenge_expired"
    default_detail = "The sign-in challenge has expired; sign in again."
    auth_header = BEARER_CHALLENGE


class InvalidLoginCode(APIException):
    """401: wrong (or replayed) TOTP code during sign-in; ``details.attempts_remaining``."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_code"
    default_detail = "The authentication code is incorrect."
    auth_header = BEARER_CHALLENGE

    def __init__(self, attempts_remaining: int) -> None:
        super().__init__()
        self.details = {"attempts_remaining": attempts_remaining}


class InvalidTwoFactorCode(APIException):
    """400: wrong (or replayed) TOTP code when enabling or disabling 2FA.

    Not 401: the caller is authenticated; only the code is wrong.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_code"
    default_detail = "The authentication code is incorrect."


class TwoFactorAlreadyEnabled(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "two_factor_already_enabled"
    default_detail = "Two-factor authentication is already enabled; disable it first."


class TwoFactorNotEnabled(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "two_factor_not_enabled"
    default_detail = "Two-factor authentication is not enabled."


class TwoFactorSetupRequired(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "two_factor_setup_required"
    default_detail = "Start with POST 2fa/setup to get a secret, then enable it with a code."


# --- sign-in with Google (accounts.services.google) ---


class GoogleLoginUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "google_login_unavailable"
    default_detail = "Sign-in with Google is not configured on this service."


class GoogleUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "google_unavailable"
    default_detail = "Google's signing keys could not be fetched; try again later."


class InvalidGoogleToken(TokenError):
    """401 with the RFC 6750 ``invalid_token`` challenge, like the service's own tokens."""

    default_code = "invalid_google_token"
    default_detail = "The Google ID token is invalid or expired."


class GoogleEmailNotVerified(PermissionDenied):
    default_code = "google_email_not_verified"
    default_detail = "Google has not verified this account's email address."


class GoogleAccountConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "google_account_conflict"
    default_detail = "This email address is linked to a different Google account."


class AccountDisabled(PermissionDenied):
    default_code = "account_disabled"
    default_detail = "This account is disabled."
