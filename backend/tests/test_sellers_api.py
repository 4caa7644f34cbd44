"""Seller applications over the API: /api/auth/seller/{apply,status,applications/{id}/decision}."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError
from identity_support import identity_headers

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.events.services import EventType
from auth_backend.sellers import services
from auth_backend.sellers.models import (
    ApplicationStatus,
    SellerApplication,
    SellerApplicationTransition,
)

pytestmark = pytest.mark.django_db

APPLY = "/api/auth/seller/apply"
STATUS = "/api/auth/seller/status"


def decision_url(application_id: object) -> str:
    return f"/api/auth/seller/applications/{application_id}/decision"


VALID = {
    "business_name": "Acme Handmade",
    "seller_type": "company",
    "motivation": "We make furniture by hand and want to reach more buyers.",
    "portfolio_url": "https://acme.example/portfolio",
}


def make_user(email: str, **fields: object) -> User:
    fields.setdefault("email_verified_at", "2025-01-01T00:00:00Z")
    return User.objects.create_user(email, password=None, **fields)


@pytest.fixture
def applicant() -> User:
    return make_user("applicant@example.com", totp_enabled=True, totp_secret="JBSWY3DPEHPK3PXP")


@pytest.fixture
def staff() -> User:
    return make_user("staff@example.com", is_staff=True)


def post(client, url: str, user: User | None, body: dict, **claims: object):
    headers = identity_headers(user, **claims) if user is not None else {}
    return client.post(url, body, content_type="application/json", **headers)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    return body["error"]


def apply(client, user: User, **overrides: object):
    return post(client, APPLY, user, {**VALID, **overrides})


def events(event_type: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type=event_type).order_by("occurred_at"))


# --- apply -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [APPLY, f"{APPLY}/"])
def test_apply_creates_a_pending_application(client, applicant, url):
    response = post(client, url, applicant, VALID)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["business_name"] == VALID["business_name"]
    assert body["seller_type"] == "company"
    assert body["portfolio_url"] == VALID["portfolio_url"]
    assert body["decided_at"] is None and body["decision_note"] == ""
    application = SellerApplication.objects.get(pk=body["id"])
    assert application.user == applicant and application.is_pending


def test_apply_records_the_submission_transition_and_event(client, applicant):
    body = apply(client, applicant).json()

    transition = SellerApplicationTransition.objects.get(application_id=body["id"])
    assert (transition.from_status, transition.to_status) == ("", "pending")
    assert transition.actor == applicant
    [event] = events(EventType.SELLER_APPLICATION_SUBMITTED)
    assert event.subject_id == str(applicant.pk)
    assert event.payload == {"application_id": body["id"], "seller_type": "company"}


def test_portfolio_url_is_optional(client, applicant):
    body = {k: v for k, v in VALID.items() if k != "portfolio_url"}

    response = post(client, APPLY, applicant, body)

    assert response.status_code == 201, response.content
    assert response.json()["portfolio_url"] == ""


def test_apply_without_identity_is_401(client):
    response = post(client, APPLY, None, VALID)

    assert_error(response, 401, "not_authenticated")
    assert SellerApplication.objects.count() == 0


def test_apply_without_two_factor_is_403(client):
    user = make_user("no2fa@example.com")

    response = apply(client, user)

    assert_error(response, 403, "two_factor_required")
    assert SellerApplication.objects.count() == 0
    assert events(EventType.SELLER_APPLICATION_SUBMITTED) == []


def test_second_pending_application_is_409(client, applicant):
    assert apply(client, applicant).status_code == 201

    response = apply(client, applicant, business_name="Another Shop")

    assert_error(response, 409, "application_pending")
    assert SellerApplication.objects.filter(user=applicant).count() == 1
    assert len(events(EventType.SELLER_APPLICATION_SUBMITTED)) == 1


def test_seller_cannot_apply_again(client, applicant):
    applicant.is_seller = True
    applicant.save()

    assert_error(apply(client, applicant), 409, "already_seller")


def test_a_rejected_applicant_may_apply_again(client, applicant, staff):
    first = apply(client, applicant).json()
    services.decide_application(application_id=first["id"], actor=staff, decision="reject")

    response = apply(client, applicant)

    assert response.status_code == 201
    assert response.json()["id"] != first["id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("business_name", "A"),
        ("business_name", "x" * 201),
        ("business_name", "   "),
        ("seller_type", "corporation"),
        ("motivation", "too short"),
        ("motivation", "m" * 2001),
        ("portfolio_url", "http://acme.example/portfolio"),
        ("portfolio_url", "ftp://acme.example/portfolio"),
        ("portfolio_url", "not a url"),
        ("portfolio_url", "https://user:secret@acme.example/"),
    ],
)
def test_invalid_fields_are_400(client, applicant, field, value):
    response = apply(client, applicant, **{field: value})

    error = assert_error(response, 400, "invalid")
    assert field in error["details"]["fields"]
    assert SellerApplication.objects.count() == 0


@pytest.mark.parametrize("missing", ["business_name", "seller_type", "motivation"])
def test_missing_required_fields_are_400(client, applicant, missing):
    body = {k: v for k, v in VALID.items() if k != missing}

    error = assert_error(post(client, APPLY, applicant, body), 400, "invalid")

    assert missing in error["details"]["fields"]


def test_status_and_seller_flag_are_not_client_writable(client, applicant):
    response = apply(client, applicant, status="approved", is_seller=True)

    assert response.json()["status"] == "pending"
    applicant.refresh_from_db()
    assert applicant.is_seller is False


def test_database_constraint_allows_one_pending_application_per_user(applicant):
    SellerApplication.objects.create(
        user=applicant, business_name="One", seller_type="company", motivation="m" * 20
    )
    with pytest.raises(IntegrityError):
        SellerApplication.objects.create(
            user=applicant, business_name="Two", seller_type="company", motivation="m" * 20
        )


def test_a_race_past_the_friendly_check_still_answers_409(client, applicant, monkeypatch):
    """Two concurrent requests can both pass the "pending?" check; the constraint decides."""
    assert apply(client, applicant).status_code == 201
    monkeypatch.setattr(services, "has_pending_application", lambda user: False)

    response = apply(client, applicant)

    assert_error(response, 409, "application_pending")
    assert SellerApplication.objects.filter(user=applicant).count() == 1


# --- status ------------------------------------------------------------------------------------


def test_status_without_an_application_is_404(client, applicant):
    response = client.get(STATUS, **identity_headers(applicant))

    assert_error(response, 404, "no_application")


def test_status_without_identity_is_401(client):
    assert_error(client.get(STATUS), 401, "not_authenticated")


@pytest.mark.parametrize("url", [STATUS, f"{STATUS}/"])
def test_status_shows_the_latest_application(client, applicant, staff, url):
    first = apply(client, applicant).json()
    services.decide_application(
        application_id=first["id"], actor=staff, decision="reject", note="Portfolio link is broken."
    )
    second = apply(client, applicant, business_name="Acme Again").json()

    response = client.get(url, **identity_headers(applicant))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == second["id"]
    assert body["status"] == "pending"
    assert {"id", "status", "submitted_at", "decided_at", "decision_note"} <= set(body)


def test_status_shows_the_decision(client, applicant, staff):
    created = apply(client, applicant).json()
    post(client, decision_url(created["id"]), staff, {"decision": "reject", "note": "Too vague."})

    body = client.get(STATUS, **identity_headers(applicant)).json()

    assert body["status"] == "rejected"
    assert body["decision_note"] == "Too vague."
    assert body["decided_at"] is not None


def test_status_is_per_user(client, applicant):
    apply(client, applicant)
    other = make_user("other@example.com", totp_enabled=True)

    assert_error(client.get(STATUS, **identity_headers(other)), 404, "no_application")


# --- decision ------------------------------------------------------------------------------------


@pytest.fixture
def pending(client, applicant) -> dict:
    response = apply(client, applicant)
    assert response.status_code == 201
    return response.json()


@pytest.mark.parametrize("trailing", ["", "/"])
def test_staff_approval_makes_the_user_a_seller(client, applicant, staff, pending, trailing):
    response = post(
        client,
        decision_url(pending["id"]) + trailing,
        staff,
        {"decision": "approve", "note": "Welcome aboard."},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "approved"
    assert body["decision_note"] == "Welcome aboard."
    assert body["decided_at"] is not None
    applicant.refresh_from_db()
    assert applicant.is_seller is True
    assert "seller" in applicant.roles

    application = SellerApplication.objects.get(pk=pending["id"])
    assert application.decided_by == staff
    last = application.transitions.order_by("at", "id").last()
    assert (last.from_status, last.to_status) == ("pending", "approved")
    assert last.actor == staff and last.note == "Welcome aboard."
    assert last.at == application.decided_at
    [event] = events(EventType.SELLER_APPLICATION_APPROVED)
    assert event.subject_id == str(applicant.pk)
    assert event.payload == {"application_id": pending["id"], "decided_by": str(staff.pk)}


def test_staff_rejection_keeps_the_user_a_buyer(client, applicant, staff, pending):
    response = post(client, decision_url(pending["id"]), staff, {"decision": "reject"})

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    applicant.refresh_from_db()
    assert applicant.is_seller is False
    assert [
        (t.from_status, t.to_status)
        for t in SellerApplicationTransition.objects.filter(application_id=pending["id"])
    ] == [("", "pending"), ("pending", "rejected")]
    assert len(events(EventType.SELLER_APPLICATION_REJECTED)) == 1
    assert events(EventType.SELLER_APPLICATION_APPROVED) == []


def test_an_application_is_decided_only_once(client, staff, pending):
    assert (
        post(client, decision_url(pending["id"]), staff, {"decision": "approve"}).status_code == 200
    )

    response = post(client, decision_url(pending["id"]), staff, {"decision": "reject"})

    assert_error(response, 409, "already_decided")
    assert SellerApplication.objects.get(pk=pending["id"]).status == ApplicationStatus.APPROVED
    assert SellerApplicationTransition.objects.filter(application_id=pending["id"]).count() == 2
    assert events(EventType.SELLER_APPLICATION_REJECTED) == []


def test_non_staff_cannot_decide(client, applicant, pending):
    other = make_user("buyer@example.com")

    for user in (other, applicant):
        response = post(client, decision_url(pending["id"]), user, {"decision": "approve"})
        assert_error(response, 403, "permission_denied")

    assert SellerApplication.objects.get(pk=pending["id"]).is_pending
    applicant.refresh_from_db()
    assert applicant.is_seller is False


def test_staff_role_in_the_token_is_required(client, staff, pending):
    response = post(
        client, decision_url(pending["id"]), staff, {"decision": "approve"}, roles=["user"]
    )

    assert_error(response, 403, "permission_denied")
    assert SellerApplication.objects.get(pk=pending["id"]).is_pending


def test_staff_account_flag_is_required(client, pending):
    former_staff = make_user("former@example.com")  # is_staff=False

    response = post(
        client,
        decision_url(pending["id"]),
        former_staff,
        {"decision": "approve"},
        roles=["user", "staff"],
    )

    assert_error(response, 403, "permission_denied")


def test_decision_without_identity_is_401(client, pending):
    assert_error(
        post(client, decision_url(pending["id"]), None, {"decision": "approve"}),
        401,
        "not_authenticated",
    )


def test_staff_cannot_decide_their_own_application(client):
    staff_applicant = make_user("selfie@example.com", is_staff=True, totp_enabled=True)
    created = apply(client, staff_applicant).json()

    response = post(client, decision_url(created["id"]), staff_applicant, {"decision": "approve"})

    assert_error(response, 403, "own_application")
    staff_applicant.refresh_from_db()
    assert staff_applicant.is_seller is False


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "%20", "0" * 40])
def test_malformed_application_id_is_404(client, staff, bad_id):
    assert_error(
        post(client, decision_url(bad_id), staff, {"decision": "approve"}), 404, "not_found"
    )


def test_unknown_application_id_is_404(client, staff):
    assert_error(
        post(client, decision_url(uuid.uuid4()), staff, {"decision": "approve"}), 404, "not_found"
    )


@pytest.mark.parametrize(
    "body", [{}, {"decision": "maybe"}, {"decision": "approve", "note": "n" * 2001}]
)
def test_invalid_decision_body_is_400(client, staff, pending, body):
    assert_error(post(client, decision_url(pending["id"]), staff, body), 400, "invalid")
    assert SellerApplication.objects.get(pk=pending["id"]).is_pending


def test_a_failing_event_write_rolls_the_application_back(applicant, monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise IntegrityError("outbox unavailable")

    monkeypatch.setattr(services, "record_event", broken)

    with pytest.raises(IntegrityError):
        services.submit_application(user=applicant, **VALID)

    assert SellerApplication.objects.count() == 0
    assert SellerApplicationTransition.objects.count() == 0


def test_a_failing_decision_leaves_no_trace(applicant, staff, monkeypatch):
    application = services.submit_application(user=applicant, **VALID)

    def broken(*args: object, **kwargs: object) -> None:
        raise IntegrityError("outbox unavailable")

    monkeypatch.setattr(services, "record_event", broken)
    with pytest.raises(IntegrityError):
        services.decide_application(application_id=application.pk, actor=staff, decision="approve")

    application.refresh_from_db()
    applicant.refresh_from_db()
    assert application.is_pending and application.decided_by is None
    assert applicant.is_seller is False
    assert application.transitions.count() == 1
