"""Request/response shapes of the accounts endpoints (validation only; rules live in services)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from rest_framework import serializers

from auth_backend.accounts.models import User
from auth_backend.accounts.services import MAX_TOKEN_LENGTH, PROFILE_WRITABLE_FIELDS
from auth_backend.accounts.totp import DIGITS, is_code

PASSWORD_MAX_LENGTH = 1024  # bounds the Argon2 input; far above any real password


def _password_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=PASSWORD_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
        write_only=True,
        **kwargs,
    )


def _token_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=MAX_TOKEN_LENGTH, trim_whitespace=True, **kwargs)


def _validate_code(value: str) -> str:
    # ASCII digits only: fullwidth "123456" passes str.isdigit() but is no code (totp.is_code).
    if not is_code(value):
        raise serializers.ValidationError(
            f"Enter the {DIGITS}-digit code (digits 0-9 only).", code="invalid"
        )
    return value


def _code_field() -> serializers.CharField:
    return serializers.CharField(
        min_length=DIGITS,
        max_length=DIGITS,
        trim_whitespace=True,
        validators=[_validate_code],
        help_text=f"The {DIGITS}-digit code shown by the authenticator app (ASCII 0-9).",
    )


# --- registration, verification, password reset ----------------------------------------------


class RegisterInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = _password_field()
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    email_verified = serializers.BooleanField()


class VerifyEmailInputSerializer(serializers.Serializer):
    token = _token_field(help_text="The code from the verification email.")


class EmailInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class AcceptedSerializer(serializers.Serializer):
    message = serializers.CharField()


class PasswordResetConfirmInputSerializer(serializers.Serializer):
    token = _token_field(help_text="The code from the password reset email.")
    new_password = _password_field()


# --- sign-in ---------------------------------------------------------------------------------


class LoginInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = _password_field()


class LoginTwoFactorInputSerializer(serializers.Serializer):
    challenge_token = _token_field(help_text="From the `login` (or `google/login`) answer.")
    code = _code_field()


# --- two-factor ------------------------------------------------------------------------------


class TwoFactorCodeInputSerializer(serializers.Serializer):
    code = _code_field()


class TwoFactorSetupOutputSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32 TOTP secret, for manual entry.")
    otpauth_uri = serializers.CharField(help_text="`otpauth://totp/…` URI (render as QR).")


class TwoFactorStatusSerializer(serializers.Serializer):
    two_factor_enabled = serializers.BooleanField()


# --- profile ---------------------------------------------------------------------------------


class ProfileOutputSerializer(serializers.ModelSerializer):
    email_verified = serializers.BooleanField(read_only=True)
    roles = serializers.ListField(child=serializers.CharField(), read_only=True)
    two_factor_enabled = serializers.BooleanField(source="totp_enabled", read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "bio",
            "avatar_url",
            "language",
            "email_verified",
            "roles",
            "is_seller",
            "two_factor_enabled",
            "date_joined",
        ]
        read_only_fields = fields


def _validate_language(value: str) -> str:
    codes = {code for code, _name in settings.LANGUAGES}
    if value not in codes:
        raise serializers.ValidationError(
            'Not a supported language code (e.g. "en", "de", "pt-br").'
        )
    return value


def _read_only_names() -> set[str]:
    """Names a client may take for account attributes: profile output and model fields."""
    model_fields = {field.name for field in User._meta.get_fields()}
    attnames = {getattr(field, "attname", field.name) for field in User._meta.get_fields()}
    return {*ProfileOutputSerializer.Meta.fields, *model_fields, *attnames, "role"}


class ProfileUpdateSerializer(serializers.Serializer):
    """PATCH body: only whitelisted fields; anything else is an error, never ignored.

    Silently dropping ``is_seller`` or ``email`` would let a client believe a change was
    made; naming the offending fields tells it exactly what it may not do.
    """

    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    bio = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    avatar_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        validators=[URLValidator(schemes=["https"], message="Enter a valid https:// URL.")],
        help_text="An https:// URL, or empty to remove the avatar.",
    )
    language = serializers.CharField(
        max_length=16,
        required=False,
        validators=[_validate_language],
        help_text="A language code from the service's list.",
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = ", ".join(PROFILE_WRITABLE_FIELDS)
            read_only = _read_only_names()
            errors = {
                key: [
                    f"This field is read-only. Writable fields: {writable}."
                    if key in read_only
                    else f"Unknown field. Writable fields: {writable}."
                ]
                for key in data
                if key not in PROFILE_WRITABLE_FIELDS
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
