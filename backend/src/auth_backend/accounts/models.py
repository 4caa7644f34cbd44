"""Accounts: the user and the data it owns. Business rules live in services.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from auth_backend.accounts.addresses import InvalidAddress, canonical_email


def normalize_email(email: str) -> str:
    """The address as accounts store and compare it: its canonical spelling
    (:func:`auth_backend.accounts.addresses.canonical_email`: IDNA/UTS-46 ASCII domain,
    lower case). The API refuses addresses that have none before they get here; for the
    rest (admin forms, rows stored before) it is the old rule, stripped and lower-cased."""
    try:
        return canonical_email(email)
    except InvalidAddress:
        return legacy_normalize_email(email)


def legacy_normalize_email(email: str) -> str:
    """How addresses were stored before they had a canonical spelling: lower-cased."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        user = self.model(email=normalize_email(email), **fields)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        fields.setdefault("email_verified_at", timezone.now())
        return self.create_user(email, password, **fields)


class Role(models.TextChoices):
    USER = "user"
    SELLER = "seller"
    STAFF = "staff"


class User(AbstractBaseUser, PermissionsMixin):
    """A marketplace account. ``id`` is the ``sub`` of every token issued for it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)  # stored lower-cased
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    bio = models.TextField(max_length=1000, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    language = models.CharField(max_length=16, default="en")

    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    is_seller = models.BooleanField(default=False)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    google_sub = models.CharField(max_length=255, null=True, blank=True, unique=True)

    # TOTP (RFC 6238). last_totp_step makes every accepted code single-use.
    totp_secret = models.CharField(max_length=64, blank=True)
    totp_enabled = models.BooleanField(default=False)
    last_totp_step = models.BigIntegerField(null=True, blank=True)
    # The per-account budget of wrong second-factor codes (services/second_factor.py): the
    # wrong codes counted since ``second_factor_failures_since``, the start of the window.
    second_factor_failures = models.PositiveIntegerField(default=0, editable=False)
    second_factor_failures_since = models.DateTimeField(null=True, blank=True, editable=False)

    date_joined = models.DateTimeField(default=timezone.now)
    # When the owner was last told that someone tried to register this address (the notice
    # is sent at most once per ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS).
    registration_notice_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def roles(self) -> list[str]:
        roles = [Role.USER.value]
        if self.is_seller:
            roles.append(Role.SELLER.value)
        if self.is_staff:
            roles.append(Role.STAFF.value)
        return roles


class TokenPurpose(models.TextChoices):
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name, not a secret


class OneTimeToken(models.Model):
    """A single-use token mailed to the user (email verification, password reset).

    Only the SHA-256 of the random token is stored; the raw value exists in the email alone,
    so a database dump cannot be replayed. ``used_at`` is set exactly once, by a conditional
    update, which is what makes the token single-use under concurrency. ``created_at`` of
    the newest row of a (user, purpose) is also the time the last email of that kind was
    sent: the per-address resend limit reads it.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="one_time_tokens")
    purpose = models.CharField(max_length=32, choices=TokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["user", "purpose", "created_at"], name="accounts_ott_user_purpose_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} token of {self.user_id}"

    def is_usable(self, now: datetime) -> bool:
        return self.used_at is None and self.expires_at > now


class LoginChallenge(models.Model):
    """The second step of a sign-in for an account with TOTP enabled.

    Created after the first factor succeeded (password, or Google); the client trades its
    token plus a TOTP code for a token pair. Stored hashed, short-lived, single-use, and
    dead after ``LOGIN_CHALLENGE_MAX_ATTEMPTS`` wrong codes so the 10^6 code space cannot
    be brute-forced through one challenge. ``amr`` carries the first factor's methods into
    the issued tokens.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="login_challenges")
    token_hash = models.CharField(max_length=64, unique=True)
    amr = models.JSONField(default=list)
    # What the account's credentials were when the first factor succeeded (an HMAC of the
    # password hash and the TOTP secret): a challenge whose account changed either since is
    # dead, whichever path changed it (reset, admin, shell).
    credentials = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"login challenge of {self.user_id}"

    def is_live(self, now: datetime, *, max_attempts: int) -> bool:
        return (
            self.used_at is None and self.expires_at > now and self.failed_attempts < max_attempts
        )


class RecoveryCode(models.Model):
    """A single-use code that stands in for a TOTP code (the owner lost the device).

    Ten per account, made when 2FA is turned on or on request (all replaced at once), shown
    once; only the SHA-256 of the normalised code is stored (50 random bits each: no salt or
    slow hash needed). ``used_at`` is set once, by a conditional update.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "code_hash"], name="accounts_recovery_user_idx")]

    def __str__(self) -> str:
        return f"recovery code of {self.user_id}"
