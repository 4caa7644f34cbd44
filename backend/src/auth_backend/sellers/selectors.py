"""Read-side queries on seller applications."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from auth_backend.accounts.models import User
from auth_backend.sellers.models import (
    ApplicationStatus,
    SellerApplication,
    SellerApplicationTransition,
)


def parse_application_id(raw: object) -> uuid.UUID | None:
    """The application id in ``raw``, or ``None`` when it is not a UUID (a 404, never a 500)."""
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def latest_application_for(user: User) -> SellerApplication | None:
    """The user's most recent application, whatever its status."""
    return SellerApplication.objects.filter(user=user).order_by("-submitted_at").first()


def application_by_id(application_id: str | uuid.UUID) -> SellerApplication | None:
    key = parse_application_id(application_id)
    if key is None:
        return None
    return SellerApplication.objects.select_related("user").filter(pk=key).first()


def pending_application_count() -> int:
    """Applications waiting for a decision (index ``seller_app_status_idx``)."""
    return SellerApplication.objects.filter(status=ApplicationStatus.PENDING).count()


def has_pending_application(user: User) -> bool:
    return SellerApplication.objects.filter(user=user, status=ApplicationStatus.PENDING).exists()


def transitions_of(application: SellerApplication) -> QuerySet[SellerApplicationTransition]:
    return application.transitions.select_related("actor").order_by("at", "id")
