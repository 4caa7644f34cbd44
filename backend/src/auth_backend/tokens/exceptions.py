"""Why a token is refused: a 401 with an RFC 6750 challenge and a stable ``code``, in the
project's error shape (:mod:`auth_backend.core.errors`)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException

from auth_backend.core.errors import INVALID_TOKEN_CHALLENGE


class TokenError(APIException):
    """Base of the token errors: 401 with an RFC 6750 challenge."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_token"
    default_detail = "The token is invalid."
    auth_header = INVALID_TOKEN_CHALLENGE


class InvalidRefreshToken(TokenError):
    """Unknown, expired, used or revoked refresh token — deliberately indistinguishable."""

    default_code = "invalid_refresh_token"
    default_detail = "The refresh token is invalid, expired or revoked."


class InvalidAccessToken(TokenError):
    """An access token this service would not accept; ``reason`` says why (internal callers).

    Reasons: ``malformed``, ``unknown_key``, ``bad_signature``, ``expired``,
    ``not_yet_valid``, ``wrong_issuer``, ``wrong_audience``, ``missing_claim``,
    ``wrong_token_use``, ``unknown_token``, ``revoked``, ``inactive_user``.
    """

    default_code = "invalid_token"
    default_detail = "The access token is invalid."

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
        self.details = {"reason": reason}
