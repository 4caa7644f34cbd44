"""Request/response shapes of the accounts endpoints (validation only; rules live in services)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import (
    MinimumLengthValidator,
    get_default_password_validators,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from auth_backend.accounts.addresses import InvalidAddress, canonical_email
from auth_backend.accounts.models import User
from auth_backend.accounts.services.google import MAX_ID_TOKEN_LENGTH
from auth_backend.accounts.services.one_time_tokens import MAX_TOKEN_LENGTH
from auth_backend.accounts.services.profile import PROFILE_WRITABLE_FIELDS
from auth_backend.accounts.services.second_factor import (
    RECOVERY_CODE_COUNT,
    RECOVERY_CODE_MAX_LENGTH,
    RECOVERY_CODE_PATTERN,
    is_recovery_code,
)
from auth_backend.accounts.totp import DIGITS, is_code
from auth_backend.core.openapi import HTTPS_URL_PATTERN
from auth_backend.core.serializers import InputSerializer

PASSWORD_MAX_LENGTH = 1024  # bounds the Argon2 input; far above any real password


def _password_min_length() -> int:
    """The shortest password the server's rules (AUTH_PASSWORD_VALIDATORS) allow."""
    lengths = [
        validator.min_length
        for validator in get_default_password_validators()
        if isinstance(validator, MinimumLengthValidator)
    ]
    return max(lengths, default=1)


def _password_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=PASSWORD_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
        write_only=True,
        **kwargs,
    )


# What the schema can say of the password rules (services check them all): long enough,
# not all digits, no NUL. Common passwords and likeness to the email or names it cannot.
@extend_schema_field(
    {
        "type": "string",
        "minLength": _password_min_length(),
        "pattern": "^[^\\u0000]*[^\\u0000\\d][^\\u0000]*$",
    }
)
class NewPasswordField(serializers.CharField):
    """A password being set: the server's password rules apply (in services)."""


def _new_password_field() -> serializers.CharField:
    return NewPasswordField(
        max_length=PASSWORD_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
        write_only=True,
        help_text="Checked against the server's password rules: at least "
        f"{_password_min_length()} characters, not all digits, not a common password, "
        "not too like the email or names.",
    )


def _token_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=MAX_TOKEN_LENGTH, trim_whitespace=True, **kwargs)


def _validate_code(value: str) -> None:
    # ASCII digits only: fullwidth "123456" passes str.isdigit() but is no code (totp.is_code).
    if not is_code(value):
        raise serializers.ValidationError(
            f"Enter the {DIGITS}-digit code (digits 0-9 only).", code="invalid"
        )


@extend_schema_field({"type": "string", "pattern": f"^[0-9]{{{DIGITS}}}$"})
class TotpCodeField(serializers.CharField):
    """A TOTP code: exactly DIGITS ASCII digits (totp.is_code)."""


def _code_field() -> serializers.CharField:
    return TotpCodeField(
        min_length=DIGITS,
        max_length=DIGITS,
        trim_whitespace=True,
        validators=[_validate_code],
        help_text=f"The {DIGITS}-digit code shown by the authenticator app (ASCII 0-9).",
    )


def _validate_second_factor_code(value: str) -> None:
    if not (is_code(value) or is_recovery_code(value)):
        raise serializers.ValidationError(
            f"Enter the {DIGITS}-digit code (digits 0-9 only) or a recovery code (xxxxx-xxxxx).",
            code="invalid",
        )


@extend_schema_field(
    {"type": "string", "pattern": f"^(?:[0-9]{{{DIGITS}}}|{RECOVERY_CODE_PATTERN})$"}
)
class SecondFactorCodeField(serializers.CharField):
    """A TOTP code (totp.is_code) or a recovery code (second_factor.is_recovery_code)."""


def _second_factor_code_field() -> serializers.CharField:
    return SecondFactorCodeField(
        min_length=DIGITS,
        max_length=RECOVERY_CODE_MAX_LENGTH,
        trim_whitespace=True,
        validators=[_validate_second_factor_code],
        help_text=f"The {DIGITS}-digit code shown by the authenticator app (ASCII 0-9), or "
        "one of the account's unused recovery codes (`xxxxx-xxxxx`, any case, the dash "
        "optional; each works once).",
    )


class AccountEmailField(serializers.EmailField):
    """An account's address, answered in its canonical spelling (accounts/addresses.py):
    look-alike spellings of one mailbox are one address, ambiguous local parts refused."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 254)
        kwargs.setdefault(
            "help_text",
            "Compared in its canonical spelling: the domain per IDNA/UTS-46 (fullwidth or "
            "upper-case letters are the same domain), the part before the @ in ASCII, case "
            "ignored.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        try:
            return canonical_email(value)
        except InvalidAddress as error:
            raise serializers.ValidationError(error.message, code="invalid") from None


# --- registration, verification, password reset ----------------------------------------------


class RegisterInputSerializer(InputSerializer):
    email = AccountEmailField()
    password = _new_password_field()
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    email_verified = serializers.BooleanField()


class VerifyEmailInputSerializer(InputSerializer):
    token = _token_field(help_text="The code from the verification email.")


class EmailInputSerializer(InputSerializer):
    email = AccountEmailField()


class AcceptedSerializer(serializers.Serializer):
    message = serializers.CharField()


class PasswordResetConfirmInputSerializer(InputSerializer):
    token = _token_field(help_text="The code from the password reset email.")
    new_password = _new_password_field()


# --- sign-in ---------------------------------------------------------------------------------


class LoginInputSerializer(InputSerializer):
    email = AccountEmailField()
    password = _password_field()


class LoginTwoFactorInputSerializer(InputSerializer):
    challenge_token = _token_field(help_text="From the `login` (or `google/login`) answer.")
    code = _second_factor_code_field()


# --- two-factor ------------------------------------------------------------------------------


class TwoFactorCodeInputSerializer(InputSerializer):
    code = _code_field()


class SecondFactorCodeInputSerializer(InputSerializer):
    code = _second_factor_code_field()


def _recovery_codes_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(),
        min_length=RECOVERY_CODE_COUNT,
        max_length=RECOVERY_CODE_COUNT,
        help_text=f"{RECOVERY_CODE_COUNT} single-use recovery codes, each accepted in place of "
        "a TOTP code. Shown this once: only their hashes are stored.",
    )


class TwoFactorEnabledSerializer(serializers.Serializer):
    two_factor_enabled = serializers.BooleanField()
    recovery_codes = _recovery_codes_field()


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = _recovery_codes_field()


class TwoFactorSetupOutputSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32 TOTP secret, for manual entry.")
    otpauth_uri = serializers.CharField(help_text="`otpauth://totp/…` URI (render as QR).")


class TwoFactorStatusSerializer(serializers.Serializer):
    two_factor_enabled = serializers.BooleanField()


# --- profile ---------------------------------------------------------------------------------


class ProfileOutputSerializer(serializers.ModelSerializer):
    # What was stored: an https URL as Django reads it (not always RFC 3986's), or blank.
    avatar_url = serializers.CharField(read_only=True)
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


def _validate_language(value: str) -> None:
    codes = {code for code, _name in settings.LANGUAGES}
    if value not in codes:
        raise serializers.ValidationError(
            'Not a supported language code (e.g. "en", "de", "pt-br").'
        )


def _read_only_names() -> set[str]:
    """Names a client may take for account attributes: profile output and model fields."""
    model_fields = {field.name for field in User._meta.get_fields()}
    attnames = {getattr(field, "attname", field.name) for field in User._meta.get_fields()}
    return {*ProfileOutputSerializer.Meta.fields, *model_fields, *attnames, "role"}


@extend_schema_field({"type": "string", "pattern": HTTPS_URL_PATTERN})
class HttpsUrlField(serializers.CharField):
    """An https:// URL, or blank.

    Checked here rather than by a field validator: drf-spectacular would publish a
    URLValidator as ``format: uri``, which RFC 3986 reads more strictly than Django does.
    """

    _validate = URLValidator(schemes=["https"], message="Enter a valid https:// URL.")

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        if value:
            try:
                self._validate(value)
            except DjangoValidationError as error:
                raise serializers.ValidationError(error.messages) from None
        return value


@extend_schema_field({"type": "string", "enum": [code for code, _name in settings.LANGUAGES]})
class LanguageField(serializers.CharField):
    """One of the service's language codes (settings.LANGUAGES)."""


class ProfileUpdateSerializer(InputSerializer):
    """PATCH body: only whitelisted fields; anything else is an error, never ignored.

    Silently dropping ``is_seller`` or ``email`` would let a client believe a change was
    made; naming the offending fields tells it exactly what it may not do.
    """

    refuses_unknown_fields = True  # the schema says `additionalProperties: false`

    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    bio = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    avatar_url = HttpsUrlField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="An https:// URL, or empty to remove the avatar.",
    )
    language = LanguageField(
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


class GoogleLoginRequestSerializer(InputSerializer):
    id_token = serializers.CharField(max_length=MAX_ID_TOKEN_LENGTH, trim_whitespace=True)
