"""Seller applications and their audit trail. Business rules live in services.py."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SellerType(models.TextChoices):
    INDIVIDUAL = "individual", "Individual"
    COMPANY = "company", "Company"


class ApplicationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class SellerApplication(models.Model):
    """A user's request to sell on the marketplace, decided once by staff.

    At most one application per user may be pending at a time; the partial unique constraint
    makes that hold under concurrent submissions too, whatever the service checked first.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="seller_applications"
    )
    business_name = models.CharField(max_length=200)
    seller_type = models.CharField(max_length=16, choices=SellerType.choices)
    motivation = models.TextField(max_length=2000)
    portfolio_url = models.URLField(max_length=500, blank=True)

    status = models.CharField(
        max_length=16, choices=ApplicationStatus.choices, default=ApplicationStatus.PENDING
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Who decided is also in the transition rows; kept here for the admin list and the API.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision_note = models.TextField(max_length=2000, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [
            models.Index(fields=["user", "-submitted_at"], name="seller_app_user_latest_idx"),
            models.Index(fields=["status", "submitted_at"], name="seller_app_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(status=ApplicationStatus.PENDING),
                name="seller_app_one_pending_per_user",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ApplicationStatus.values),
                name="seller_app_status_valid",
            ),
            # A decision has a time; a pending application has none.
            models.CheckConstraint(
                condition=(
                    models.Q(status=ApplicationStatus.PENDING, decided_at__isnull=True)
                    | (
                        ~models.Q(status=ApplicationStatus.PENDING)
                        & models.Q(decided_at__isnull=False)
                    )
                ),
                name="seller_app_decided_at_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_name} ({self.get_status_display()})"

    @property
    def is_pending(self) -> bool:
        return self.status == ApplicationStatus.PENDING


class SellerApplicationTransition(models.Model):
    """One status change of an application: who, when, from what to what, and why.

    Rows are only ever inserted. Submission is recorded too (``from_status`` empty), so the
    trail is complete from the first state. ``actor`` is ``NULL`` only if that account was
    deleted later.
    """

    application = models.ForeignKey(
        SellerApplication, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, choices=ApplicationStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(max_length=2000, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["application", "at"], name="seller_app_transition_idx")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status} at {self.at:%Y-%m-%d %H:%M:%S}"
