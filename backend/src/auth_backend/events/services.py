"""Recording domain events. Call inside the transaction that makes the change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from auth_backend.events.models import OutboxEvent


class EventType:
    USER_REGISTERED = "user.registered"
    EMAIL_VERIFIED = "user.email_verified"
    LOGIN_SUCCEEDED = "user.login_succeeded"
    LOGIN_FAILED = "user.login_failed"
    TWO_FACTOR_ENABLED = "user.2fa_enabled"
    TWO_FACTOR_DISABLED = "user.2fa_disabled"
    LOGGED_OUT = "user.logged_out"
    PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an event name
    SELLER_APPLICATION_SUBMITTED = "seller.application_submitted"
    SELLER_APPLICATION_APPROVED = "seller.application_approved"
    SELLER_APPLICATION_REJECTED = "seller.application_rejected"


def record_event(event_type: str, *, subject_id: str = "", **payload: Any) -> OutboxEvent:
    """Write an event to the outbox in the caller's transaction.

    A rolled-back change therefore emits nothing; the relay publishes committed rows.
    """
    with transaction.atomic():  # a savepoint inside the caller's transaction, or our own
        return OutboxEvent.objects.create(
            event_type=event_type, subject_id=str(subject_id), payload=payload
        )
