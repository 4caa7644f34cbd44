"""Tokens: signing keys, refresh-token families, issued access tokens, per-user cut-offs.

Business rules live in ``services.py``; these models hold data and the invariants the
database can enforce (one current and one previous signing key, unique refresh-token hashes).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SigningKeyState(models.TextChoices):
    CURRENT = "current"  # signs new access tokens, published in the JWKS
    PREVIOUS = "previous"  # no longer signs, still published so its tokens keep validating
    RETIRED = "retired"  # neither; private key material wiped


class SigningKey(models.Model):
    """An access-token signing key pair.

    The private key is a PKCS#8 PEM encrypted with Fernet under a key derived from
    ``SECRET_KEY`` (see ``keys.py``), so a database dump alone does not leak it. ``kid`` is the
    RFC 7638 thumbprint of the public key.
    """

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=16, default="RS256")
    private_key_encrypted = models.TextField(blank=True)
    public_jwk = models.JSONField()
    state = models.CharField(max_length=16, choices=SigningKeyState.choices)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one current and one previous key: the JWKS is exactly these two.
            models.UniqueConstraint(
                fields=["state"],
                condition=models.Q(state__in=[SigningKeyState.CURRENT, SigningKeyState.PREVIOUS]),
                name="tokens_signingkey_one_per_live_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"


class RefreshFamily(models.Model):
    """One sign-in session: the chain of refresh tokens rotated from one login.

    Revoking the family ends the session: every refresh token in it stops working and the
    access tokens issued from it are announced as revoked to the edge.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_families"
    )
    # Authentication methods of the login that started the session (RFC 8176), carried into
    # every access token rotated from it.
    amr = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["user"],
                name="tokens_family_live_user_idx",
                condition=models.Q(revoked_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"family {self.id}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class RefreshToken(models.Model):
    """One refresh token of a family. Only its SHA-256 hash is stored.

    ``used_at`` is set when it is rotated into a successor; presenting it again after that is
    reuse, which revokes the family.
    """

    family = models.ForeignKey(RefreshFamily, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="tokens_refresh_expires_idx")]

    def __str__(self) -> str:
        return f"refresh token {self.pk} of {self.family_id}"


class AccessTokenRecord(models.Model):
    """An issued access token (by ``jti``): what to announce, and check, when it is revoked."""

    jti = models.CharField(max_length=64, primary_key=True)
    family = models.ForeignKey(
        RefreshFamily, on_delete=models.CASCADE, related_name="access_tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["family", "expires_at"], name="tokens_access_family_exp_idx"),
            models.Index(fields=["expires_at"], name="tokens_access_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"access token {self.jti}"


class TokenNotBefore(models.Model):
    """Per-user cut-off: access tokens issued (``iat``) before ``not_before`` are revoked.

    Set when all of a user's sessions end (password reset, deactivation).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="token_not_before",
    )
    not_before = models.DateTimeField()

    def __str__(self) -> str:
        return f"not-before {self.not_before.isoformat()} for {self.user_id}"
