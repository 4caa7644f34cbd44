"""Seller applications: submitting, deciding, and the audit trail of both.

Every state change happens in one transaction with its transition row and its outbox event,
so the audit trail, the event stream and the data can never disagree.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_backend.accounts.models import User
from auth_backend.core.metrics import SELLER_APPLICATIONS
from auth_backend.events.services import EventType, record_event
from auth_backend.sellers.exceptions import (
    AlreadyDecided,
    AlreadySeller,
    ApplicationNotFound,
    ApplicationPending,
    NotStaff,
    OwnApplication,
    TwoFactorRequired,
)
from auth_backend.sellers.models import (
    ApplicationStatus,
    SellerApplication,
    SellerApplicationTransition,
)
from auth_backend.sellers.selectors import has_pending_application, parse_application_id


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


_DECISION_OUTCOME = {
    Decision.APPROVE: (ApplicationStatus.APPROVED, EventType.SELLER_APPLICATION_APPROVED),
    Decision.REJECT: (ApplicationStatus.REJECTED, EventType.SELLER_APPLICATION_REJECTED),
}


def _record_transition(
    application: SellerApplication,
    *,
    from_status: str,
    actor: User,
    at: datetime,
    event_type: str,
    note: str = "",
    **event_fields: str,
) -> None:
    """The audit row and the outbox event of a change to ``application``'s current status,
    in the caller's transaction."""
    SellerApplicationTransition.objects.create(
        application=application,
        from_status=from_status,
        to_status=application.status,
        actor=actor,
        at=at,
        note=note,
    )
    record_event(
        event_type,
        subject_id=str(application.user_id),
        application_id=str(application.pk),
        **event_fields,
    )


def submit_application(
    *,
    user: User,
    business_name: str,
    seller_type: str,
    motivation: str,
    portfolio_url: str = "",
) -> SellerApplication:
    """Open a pending application for ``user``.

    Requires 2FA (a seller account moves money, so it must not fall to a stolen password),
    refuses an account that already sells and a second pending application. The user row is
    locked so a concurrent decision on this user's previous application is seen; the partial
    unique constraint settles any race the checks miss.
    """
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.totp_enabled:
            raise TwoFactorRequired()
        if locked.is_seller:
            raise AlreadySeller()
        if has_pending_application(locked):
            raise ApplicationPending()
        now = timezone.now()
        try:
            with transaction.atomic():
                application = SellerApplication.objects.create(
                    user=locked,
                    business_name=business_name,
                    seller_type=seller_type,
                    motivation=motivation,
                    portfolio_url=portfolio_url,
                    submitted_at=now,
                )
        except IntegrityError:
            # Another request opened one between our check and the insert.
            raise ApplicationPending() from None
        _record_transition(
            application,
            from_status="",
            actor=locked,
            at=now,
            event_type=EventType.SELLER_APPLICATION_SUBMITTED,
            seller_type=application.seller_type,
        )
    SELLER_APPLICATIONS.labels(status="submitted").inc()
    return application


def decide_application(
    *,
    application_id: str | uuid.UUID,
    actor: User,
    decision: Decision | str,
    note: str = "",
) -> SellerApplication:
    """Approve or reject a pending application, as staff member ``actor``.

    The one path for every decision (API and Django admin), so each records its transition
    and event alike. The application row is locked: of two concurrent decisions exactly one
    wins, the other gets :class:`AlreadyDecided`. Approval makes the applicant a seller.
    Staff may not decide their own application (no self-promotion).
    """
    decision = Decision(decision)
    if not (actor.is_active and actor.is_staff):
        raise NotStaff()
    key = parse_application_id(application_id)
    if key is None:
        raise ApplicationNotFound()
    new_status, event_type = _DECISION_OUTCOME[decision]

    with transaction.atomic():
        application = SellerApplication.objects.select_for_update().filter(pk=key).first()
        if application is None:
            raise ApplicationNotFound()
        if application.user_id == actor.pk:
            raise OwnApplication()
        if not application.is_pending:
            raise AlreadyDecided()

        now = timezone.now()
        previous = application.status
        application.status = new_status
        application.decided_at = now
        application.decided_by = actor
        application.decision_note = note
        application.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])

        applicant = User.objects.select_for_update().get(pk=application.user_id)
        if decision is Decision.APPROVE and not applicant.is_seller:
            applicant.is_seller = True
            applicant.save(update_fields=["is_seller"])
        application.user = applicant

        _record_transition(
            application,
            from_status=previous,
            actor=actor,
            at=now,
            event_type=event_type,
            note=note,
            decided_by=str(actor.pk),
        )
    SELLER_APPLICATIONS.labels(status=new_status.value).inc()
    return application
