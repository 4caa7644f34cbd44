"""Deciding seller applications in the Django admin goes through the same service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType
from auth_backend.sellers.models import ApplicationStatus, SellerApplication
from auth_backend.sellers.services import decide_application, submit_application

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sellers/sellerapplication/"


def make_applicant(email: str) -> User:
    return User.objects.create_user(email, password=None, totp_enabled=True)


def submit(user: User, name: str = "Acme Handmade") -> SellerApplication:
    return submit_application(
        user=user,
        business_name=name,
        seller_type="individual",
        motivation="I restore vintage bicycles and sell parts.",
    )


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("admin@example.com", "a-long-admin-password")


@pytest.fixture
def client(internal_client):
    """Requests on the internal listener, where /internal/ and /admin/ are served."""
    return internal_client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def run_action(client, action: str, *applications: SellerApplication):
    return client.post(
        CHANGELIST,
        {
            "action": action,
            "_selected_action": [str(a.pk) for a in applications],
            "index": 0,
        },
        follow=True,
    )


def test_changelist_lists_and_filters_applications(admin_client):
    pending = submit(make_applicant("a@example.com"), "Pending Shop")
    decided = submit(make_applicant("b@example.com"), "Rejected Shop")
    staff = User.objects.create_user("staff@example.com", is_staff=True)
    decide_application(application_id=decided.pk, actor=staff, decision="reject")

    everything = admin_client.get(CHANGELIST)
    only_pending = admin_client.get(CHANGELIST, {"status__exact": "pending"})

    assert everything.status_code == 200
    assert b"Pending Shop" in everything.content and b"Rejected Shop" in everything.content
    assert b"Pending Shop" in only_pending.content
    assert b"Rejected Shop" not in only_pending.content
    assert admin_client.get(f"{CHANGELIST}{pending.pk}/change/").status_code == 200


def test_admin_approve_action_records_the_admin_as_actor(admin_client, admin_user):
    applicant = make_applicant("a@example.com")
    application = submit(applicant)

    response = run_action(admin_client, "approve_selected", application)

    assert response.status_code == 200
    assert b"1 application(s) approved." in response.content
    application.refresh_from_db()
    applicant.refresh_from_db()
    assert application.status == ApplicationStatus.APPROVED
    assert application.decided_by == admin_user
    assert applicant.is_seller is True
    last = application.transitions.order_by("at", "id").last()
    assert (last.from_status, last.to_status, last.actor) == ("pending", "approved", admin_user)
    event = OutboxEvent.objects.get(event_type=EventType.SELLER_APPLICATION_APPROVED)
    assert event.payload["decided_by"] == str(admin_user.pk)
    assert event.subject_id == str(applicant.pk)


def test_admin_reject_action_skips_decided_applications(admin_client, admin_user):
    first = submit(make_applicant("a@example.com"), "First Shop")
    second = submit(make_applicant("b@example.com"), "Second Shop")
    run_action(admin_client, "approve_selected", first)

    response = run_action(admin_client, "reject_selected", first, second)

    assert b"1 application(s) rejected." in response.content
    assert b"First Shop: This application has already been decided." in response.content
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ApplicationStatus.APPROVED
    assert second.status == ApplicationStatus.REJECTED
    assert second.transitions.last().actor == admin_user
    assert OutboxEvent.objects.filter(event_type=EventType.SELLER_APPLICATION_REJECTED).count() == 1


def test_staff_without_change_permission_cannot_run_the_actions(client):
    viewer = User.objects.create_user("viewer@example.com", "a-long-viewer-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sellerapplication"))
    client.force_login(viewer)
    application = submit(make_applicant("a@example.com"))

    run_action(client, "approve_selected", application)

    application.refresh_from_db()
    assert application.is_pending


def test_applications_cannot_be_added_or_deleted_in_the_admin(admin_client):
    application = submit(make_applicant("a@example.com"))

    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    admin_client.post(f"{CHANGELIST}{application.pk}/delete/", {"post": "yes"})

    assert SellerApplication.objects.filter(pk=application.pk).exists()


def test_outbox_is_browsable_read_only(admin_client):
    submit(make_applicant("a@example.com"))

    listing = admin_client.get("/admin/events/outboxevent/", {"published": "no"})
    search = admin_client.get("/admin/events/outboxevent/", {"q": "not-a-uuid"})

    assert listing.status_code == 200
    assert EventType.SELLER_APPLICATION_SUBMITTED.encode() in listing.content
    assert search.status_code == 200
