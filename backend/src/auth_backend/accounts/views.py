"""Accounts endpoints under ``/api/auth/``. Thin: serializers validate, services decide.

Public (no identity): ``register``, ``verify-email``, ``resend-verification``, ``login``,
``login/2fa``, ``google/login``, ``password/reset``, ``password/reset/confirm``.
Protected (gateway identity assertion): ``profile`` (GET, PATCH), ``2fa/setup``,
``2fa/enable``, ``2fa/disable``, ``2fa/recovery-codes``.

Error codes are in :mod:`auth_backend.accounts.exceptions`; every error has the project's
shape (:mod:`auth_backend.core.errors`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.accounts import throttling
from auth_backend.accounts.models import User
from auth_backend.accounts.serializers import (
    AcceptedSerializer,
    AccountOutputSerializer,
    EmailInputSerializer,
    GoogleLoginRequestSerializer,
    LoginInputSerializer,
    LoginTwoFactorInputSerializer,
    PasswordResetConfirmInputSerializer,
    ProfileOutputSerializer,
    ProfileUpdateSerializer,
    RecoveryCodesSerializer,
    RegisterInputSerializer,
    SecondFactorCodeInputSerializer,
    TwoFactorCodeInputSerializer,
    TwoFactorEnabledSerializer,
    TwoFactorSetupOutputSerializer,
    TwoFactorStatusSerializer,
    VerifyEmailInputSerializer,
)
from auth_backend.accounts.services import (
    google,
    passwords,
    profile,
    registration,
    sign_in,
    two_factor,
    verification,
)
from auth_backend.core.openapi import error_response
from auth_backend.identity.callers import authenticated_user
from auth_backend.tokens.serializers import TokenPairSerializer, TwoFactorChallengeSerializer

REGISTER_ACCEPTED = {
    "message": "Check the inbox of this address: a new account gets a verification code to "
    "send to verify-email; an address that already has an account gets a note "
    "instead.",
}
RESEND_ACCEPTED = {
    "message": "If this address has an account awaiting verification, a new code is on its "
    "way. Codes are sent at most once a minute.",
}
RESET_ACCEPTED = {
    "message": "If this address has an account, a password reset code is on its way. Codes "
    "are sent at most once a minute.",
}
PASSWORD_CHANGED = {"message": "Your password was changed. Sign in again on every device."}

_INVALID = error_response(
    "Validation failed; per-field messages in `error.details.fields`.", "invalid"
)
_NOT_AUTHENTICATED = error_response("No valid gateway identity.", "not_authenticated")
_BUDGET = (
    "Wrong codes count against the account's budget (10 per 15 minutes, shared by "
    "`login/2fa`, `2fa/disable` and `2fa/recovery-codes`); once it is spent every code, the "
    "right one too, gets 429 `two_factor_throttled` with `Retry-After` until the window ends."
)
_TWO_FACTOR_THROTTLED = error_response(
    "The account's budget of wrong codes is spent; wait `Retry-After` seconds (also "
    "`error.details.retry_after`).",
    "two_factor_throttled",
    details={"two_factor_throttled": {"retry_after": 600}},
)
_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait.",
)


def _sign_in_result(component_name: str) -> PolymorphicProxySerializer:
    """A sign-in's 200: a token pair, or a 2FA challenge when the account has 2FA."""
    return PolymorphicProxySerializer(
        component_name=component_name,
        serializers=[TokenPairSerializer, TwoFactorChallengeSerializer],
        resource_type_field_name=None,
    )


def _no_store(response: Response) -> Response:
    """Token responses must never be cached (RFC 6749 §5.1)."""
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _account(user: User) -> dict[str, Any]:
    return AccountOutputSerializer(
        {"id": user.pk, "email": user.email, "email_verified": user.email_verified}
    ).data


class _PublicView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]


# --- registration and verification -----------------------------------------------------------


class RegisterView(_PublicView):
    @extend_schema(
        operation_id="register",
        summary="Create an account",
        description="Always 202 with the same body, whether or not the address already "
        "has an account (compared case-insensitively), so the answer never "
        "tells who is registered. A new address gets an unverified account and "
        "an email with a single-use verification code (valid 24 h); the account "
        "cannot sign in until `verify-email` succeeds. An address that has an "
        "account is left as it is, and its owner is emailed that someone tried "
        "to register it (at most once a minute). The password must pass the "
        "server's password rules (length, common passwords, similarity to the "
        "email/names, not all digits) in both cases; failures are listed under "
        "`error.details.fields.password`.",
        request=RegisterInputSerializer,
        responses={202: AcceptedSerializer, 400: _INVALID},
        examples=[
            OpenApiExample(
                "accepted", value=REGISTER_ACCEPTED, response_only=True, status_codes=["202"]
            )
        ],
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        registration.register_user(**serializer.validated_data)
        return Response(REGISTER_ACCEPTED, status=status.HTTP_202_ACCEPTED)


class VerifyEmailView(_PublicView):
    @extend_schema(
        operation_id="verify_email",
        summary="Verify the email address",
        description="Consumes the code from the verification email. Each code works once "
        "and for 24 h; only the most recently sent code is valid.",
        request=VerifyEmailInputSerializer,
        responses={
            200: AccountOutputSerializer,
            400: error_response(
                "Validation failed, or the code is unknown, used or expired.",
                "invalid",
                "invalid_token",
            ),
        },
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = VerifyEmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = verification.verify_email(serializer.validated_data["token"])
        return Response(_account(user))


class ResendVerificationView(_PublicView):
    @extend_schema(
        operation_id="resend_verification",
        summary="Send a new verification code",
        description="Always 202 with the same body, whether or not the address has an "
        "account or is already verified. At most one email per address per "
        "minute; a new code invalidates the previous one.",
        request=EmailInputSerializer,
        responses={202: AcceptedSerializer, 400: _INVALID},
        examples=[
            OpenApiExample(
                "accepted", value=RESEND_ACCEPTED, response_only=True, status_codes=["202"]
            )
        ],
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        verification.resend_verification(serializer.validated_data["email"])
        return Response(RESEND_ACCEPTED, status=status.HTTP_202_ACCEPTED)


# --- sign-in ---------------------------------------------------------------------------------


class LoginView(_PublicView):
    @extend_schema(
        operation_id="login",
        summary="Sign in with email and password",
        description="Answers a token pair, or — when the account has two-factor "
        "authentication — `{requires_2fa: true, challenge_token}` to finish with "
        "`POST login/2fa` within 5 minutes. An unknown email, a wrong password "
        "and a disabled account get the same 401 `invalid_credentials`. A right "
        "password for an account whose email is not verified yet gets 403 "
        "`email_not_verified` (use `resend-verification`). After 5 failures "
        "for an address from one client (20 from anywhere) further attempts "
        "are refused for an exponentially growing time (1 s doubling, at most "
        "15 min): 429 `throttled` with `Retry-After`, whether or not the "
        "address has an account; a right password clears the count.",
        request=LoginInputSerializer,
        responses={
            200: _sign_in_result("LoginResult"),
            400: _INVALID,
            401: error_response("Wrong email or password.", "invalid_credentials"),
            403: error_response("Right password, email not verified yet.", "email_not_verified"),
            429: error_response(
                "Too many failed sign-ins for this address; wait "
                "`Retry-After` seconds (also `error.details.retry_after`).",
                "throttled",
                details={"throttled": {"retry_after": 4}},
            ),
        },
        parameters=[
            OpenApiParameter(
                "Retry-After",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait.",
            )
        ],
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = sign_in.login(
            **serializer.validated_data, client_address=throttling.client_address(request.META)
        )
        return _no_store(Response(result.as_response()))


class LoginTwoFactorView(_PublicView):
    @extend_schema(
        operation_id="login_2fa",
        summary="Finish a sign-in with a TOTP code or a recovery code",
        description="Trades the `challenge_token` of a `login` answer and a current TOTP "
        "code (RFC 6238, 30 s steps, ±1 step accepted) or an unused recovery code for a "
        'token pair (`amr` `["pwd", "otp"]`). A code is accepted once. A wrong code '
        "gets 401 `invalid_code` with `error.details.attempts_remaining`; after "
        "5 wrong codes, or 5 minutes, or once the account's password or TOTP secret "
        "changed, the challenge is dead: 401 `challenge_expired`, sign in again. " + _BUDGET,
        request=LoginTwoFactorInputSerializer,
        responses={
            200: TokenPairSerializer,
            400: _INVALID,
            401: error_response(
                "Wrong or reused code, or a dead challenge.", "invalid_code", "challenge_expired"
            ),
            429: _TWO_FACTOR_THROTTLED,
        },
        parameters=[_RETRY_AFTER],
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginTwoFactorInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = sign_in.complete_two_factor_login(**serializer.validated_data)
        return _no_store(Response(pair.as_response()))


def _google_error(description: str) -> OpenApiResponse:
    return OpenApiResponse(description=f"{description} (error shape: see core.errors).")


class GoogleLoginView(_PublicView):
    @extend_schema(
        operation_id="google_login",
        summary="Sign in with a Google ID token",
        description="Verifies the Google ID token, links it to an account (by Google "
        "subject, then by verified email) or creates one, and answers like "
        "`POST login`: a token pair, or a 2FA challenge when the account has "
        "two-factor authentication. 503 `google_login_unavailable` means no "
        "client id is configured; 503 `google_unavailable` that Google's keys "
        "could not be fetched.",
        request=GoogleLoginRequestSerializer,
        responses={
            200: _sign_in_result("GoogleLoginResult"),
            400: _google_error("`invalid`: per-field messages in `error.details.fields`"),
            401: _google_error("`invalid_google_token`"),
            403: _google_error("`google_email_not_verified` or `account_disabled`"),
            409: _google_error("`google_account_conflict`"),
            503: _google_error("`google_login_unavailable` or `google_unavailable`"),
        },
        tags=["tokens"],
    )
    def post(self, request: Request) -> Response:
        serializer = GoogleLoginRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _no_store(Response(google.google_login(serializer.validated_data["id_token"])))


# --- password reset --------------------------------------------------------------------------


class PasswordResetView(_PublicView):
    @extend_schema(
        operation_id="password_reset",
        summary="Email a password reset code",
        description="Always 202 with the same body, whether or not the address has an "
        "account. The code is valid for 1 h, works once, and at most one is "
        "sent per address per minute.",
        request=EmailInputSerializer,
        responses={202: AcceptedSerializer, 400: _INVALID},
        examples=[
            OpenApiExample(
                "accepted", value=RESET_ACCEPTED, response_only=True, status_codes=["202"]
            )
        ],
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        passwords.request_password_reset(serializer.validated_data["email"])
        return Response(RESET_ACCEPTED, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(_PublicView):
    @extend_schema(
        operation_id="password_reset_confirm",
        summary="Set a new password with a reset code",
        description="Sets the new password (same rules as `register`, errors under "
        "`error.details.fields.password`), consumes the code, marks the email "
        "verified and signs the account out everywhere (every refresh token "
        "revoked, access tokens announced to the gateway as revoked).",
        request=PasswordResetConfirmInputSerializer,
        responses={
            200: AcceptedSerializer,
            400: error_response(
                "Validation failed, or the code is unknown, used or expired.",
                "invalid",
                "invalid_token",
            ),
        },
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        passwords.confirm_password_reset(**serializer.validated_data)
        return Response(PASSWORD_CHANGED)


# --- profile ---------------------------------------------------------------------------------


class ProfileView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="profile_read",
        summary="The caller's profile",
        responses={200: ProfileOutputSerializer, 401: _NOT_AUTHENTICATED},
        tags=["profile"],
    )
    def get(self, request: Request) -> Response:
        return Response(ProfileOutputSerializer(authenticated_user(request)).data)

    @extend_schema(
        operation_id="profile_update",
        summary="Change the caller's profile",
        description="Writable: `first_name`, `last_name`, `bio`, `avatar_url` (https), "
        "`language`. Any other field (e.g. `email`, `roles`, `is_seller`, "
        "`email_verified`) is refused with 400 `invalid` naming the field — "
        "never silently ignored.",
        request=ProfileUpdateSerializer,
        responses={200: ProfileOutputSerializer, 400: _INVALID, 401: _NOT_AUTHENTICATED},
        tags=["profile"],
    )
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = profile.update_profile(authenticated_user(request), **serializer.validated_data)
        return Response(ProfileOutputSerializer(user).data)


# --- two-factor setup ------------------------------------------------------------------------


class TwoFactorSetupView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="two_factor_setup",
        summary="Start TOTP setup",
        description="Generates a new secret and its `otpauth://` URI for an authenticator "
        "app. Two-factor authentication is not on until `2fa/enable` gets a "
        "valid code. Calling it again replaces the pending secret.",
        request=None,
        responses={
            200: TwoFactorSetupOutputSerializer,
            401: _NOT_AUTHENTICATED,
            409: error_response("2FA is already on.", "two_factor_already_enabled"),
        },
        tags=["2fa"],
    )
    def post(self, request: Request) -> Response:
        setup = two_factor.start_two_factor_setup(authenticated_user(request))
        return _no_store(Response(TwoFactorSetupOutputSerializer(setup).data))


class TwoFactorEnableView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="two_factor_enable",
        summary="Turn on TOTP with a code",
        description="Needs a code of the pending secret from `2fa/setup` (a recovery code "
        "does not count). The answer carries the account's 10 recovery codes: each "
        "works once in place of a TOTP code (sign-in, `2fa/disable`, "
        "`2fa/recovery-codes`); they are shown this once.",
        request=TwoFactorCodeInputSerializer,
        responses={
            200: TwoFactorEnabledSerializer,
            400: error_response(
                "Validation failed, or a wrong or reused code.", "invalid", "invalid_code"
            ),
            401: _NOT_AUTHENTICATED,
            409: error_response(
                "Already on, or no setup started.",
                "two_factor_already_enabled",
                "two_factor_setup_required",
            ),
        },
        tags=["2fa"],
    )
    def post(self, request: Request) -> Response:
        serializer = TwoFactorCodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, codes = two_factor.enable_two_factor(
            authenticated_user(request), **serializer.validated_data
        )
        return _no_store(
            Response({"two_factor_enabled": user.totp_enabled, "recovery_codes": codes})
        )


# The answers of an operation that takes a TOTP or recovery code from a signed-in caller.
_CODE_CHECKED_ERRORS = {
    400: error_response("Validation failed, or a wrong or reused code.", "invalid", "invalid_code"),
    401: _NOT_AUTHENTICATED,
    409: error_response("2FA is not on.", "two_factor_not_enabled"),
    429: _TWO_FACTOR_THROTTLED,
}


class TwoFactorDisableView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="two_factor_disable",
        summary="Turn off TOTP with a code",
        description="Takes a current TOTP code or an unused recovery code. The secret, the "
        "recovery codes and every pending sign-in challenge are discarded. " + _BUDGET,
        request=SecondFactorCodeInputSerializer,
        responses={
            200: TwoFactorStatusSerializer,
            **_CODE_CHECKED_ERRORS,
        },
        parameters=[_RETRY_AFTER],
        tags=["2fa"],
    )
    def post(self, request: Request) -> Response:
        serializer = SecondFactorCodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = two_factor.disable_two_factor(
            authenticated_user(request), **serializer.validated_data
        )
        return Response({"two_factor_enabled": user.totp_enabled})


class TwoFactorRecoveryCodesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="two_factor_recovery_codes",
        summary="Replace the recovery codes",
        description="Takes a current TOTP code or an unused recovery code and answers 10 new "
        "recovery codes, shown this once; the previous ones stop working. " + _BUDGET,
        request=SecondFactorCodeInputSerializer,
        responses={
            200: RecoveryCodesSerializer,
            **_CODE_CHECKED_ERRORS,
        },
        parameters=[_RETRY_AFTER],
        tags=["2fa"],
    )
    def post(self, request: Request) -> Response:
        serializer = SecondFactorCodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        codes = two_factor.regenerate_recovery_codes(
            authenticated_user(request), **serializer.validated_data
        )
        return _no_store(Response({"recovery_codes": codes}))
