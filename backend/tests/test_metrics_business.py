"""Business metrics (backend/docs/metrics.md): each path through the API moves exactly the
series it should, by exactly one, and no other business series; the scrape-time gauges
read the database.

Counters live in prometheus_client's default registry for the whole test session, so every
test compares before/after values of all ``auth_*`` counter and histogram-count samples.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from accounts_support import (
    PASSWORD,
    T0,
    last_mailed_token,
    make_user,
    post,
    totp_code,
)
from django.utils import timezone
from identity_support import identity_headers
from prometheus_client import REGISTRY

from auth_backend.accounts import throttling, totp
from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent
from auth_backend.internal.keys import generate_api_key, hash_api_key, parse_api_keys
from auth_backend.sellers.models import SellerApplication
from auth_backend.tokens.models import RefreshToken
from auth_backend.tokens.services.issuing import hash_refresh_token, issue_token_pair
from auth_backend.tokens.services.revoking import revoke_family_of

pytestmark = pytest.mark.django_db

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = generate_api_key()

# The business series: every sample of these families is compared before and after.
BUSINESS = (
    "auth_login",
    "auth_login_failed",
    "auth_login_duration_seconds",
    "auth_registrations",
    "auth_email_verifications",
    "auth_2fa_challenges",
    "auth_2fa_verifications",
    "auth_2fa_budget_refusals",
    "auth_tokens_issued",
    "auth_token_refresh",
    "auth_refresh_token_reuse",
    "auth_logouts",
    "auth_seller_applications",
    "auth_jwt_validation",
    "auth_internal_api_requests",
)


def _samples() -> dict[str, float]:
    values = {}
    for family in REGISTRY.collect():
        if family.name not in BUSINESS:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


class Moves:
    """``with Moves() as moved: ...`` then ``moved.deltas``: the samples that changed."""

    def __enter__(self) -> Moves:
        self.before = _samples()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _samples()
        self.deltas = {
            key: after[key] - self.before.get(key, 0.0)
            for key in after
            if after[key] != self.before.get(key, 0.0)
        }


def login_ok(status: str = "success", requires_2fa: str = "false") -> dict[str, float]:
    return {
        f"auth_login_total{{requires_2fa={requires_2fa},status={status}}}": 1,
        "auth_login_duration_seconds_count{}": 1,
    }


def login_failed(reason: str) -> dict[str, float]:
    return {**login_ok("failure"), f"auth_login_failed_total{{reason={reason}}}": 1}


TOKENS = {"auth_tokens_issued_total{kind=access}": 1, "auth_tokens_issued_total{kind=refresh}": 1}


def test_business_series_exist_at_zero_before_anything_happens():
    values = _samples()
    for key in (
        "auth_login_total{requires_2fa=true,status=success}",
        "auth_login_failed_total{reason=throttled}",
        "auth_registrations_total{outcome=existing_email}",
        "auth_email_verifications_total{result=invalid_token}",
        "auth_2fa_verifications_total{result=invalid_code}",
        "auth_2fa_verifications_total{result=throttled}",
        "auth_2fa_budget_refusals_total{operation=login}",
        "auth_2fa_budget_refusals_total{operation=disable}",
        "auth_2fa_budget_refusals_total{operation=recovery_codes}",
        "auth_token_refresh_total{result=reuse}",
        "auth_seller_applications_total{status=rejected}",
        "auth_jwt_validation_total{result=revoked}",
        "auth_2fa_challenges_total{}",
        "auth_refresh_token_reuse_total{}",
        "auth_logouts_total{}",
        "auth_login_duration_seconds_count{}",
    ):
        assert key in values, key


# --- registration and verification -----------------------------------------------------------


def test_registration_outcomes_are_counted_apart(client):
    body = {"email": "new@example.com", "password": PASSWORD}
    with Moves() as created:
        assert post(client, "register", body).status_code == 202
    assert created.deltas == {"auth_registrations_total{outcome=created}": 1}
    with Moves() as taken:
        assert post(client, "register", {**body, "email": "NEW@example.com"}).status_code == 202
    assert taken.deltas == {"auth_registrations_total{outcome=existing_email}": 1}
    with Moves() as weak:
        assert post(client, "register", {**body, "password": "short"}).status_code == 400
    assert weak.deltas == {"auth_registrations_total{outcome=invalid_password}": 1}


def test_email_verification_results(client):
    assert (
        post(client, "register", {"email": "v@example.com", "password": PASSWORD}).status_code
        == 202
    )
    token = last_mailed_token("verification", "v@example.com")
    with Moves() as verified:
        assert post(client, "verify-email", {"token": token}).status_code == 200
    assert verified.deltas == {"auth_email_verifications_total{result=verified}": 1}
    with Moves() as used:
        assert post(client, "verify-email", {"token": token}).status_code == 400
    assert used.deltas == {"auth_email_verifications_total{result=invalid_token}": 1}


# --- sign-in ---------------------------------------------------------------------------------


def test_successful_login_counts_once_with_its_tokens(client):
    make_user()
    with Moves() as moved:
        response = post(client, "login", {"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert moved.deltas == {**login_ok(), **TOKENS}


@pytest.mark.parametrize(
    ("reason", "fields", "password", "status"),
    [
        ("wrong_password", {}, "not-the-password-1", 401),
        ("unknown_email", None, PASSWORD, 401),
        ("no_password", {"password": None}, PASSWORD, 401),
        ("inactive", {"is_active": False}, PASSWORD, 401),
        ("email_not_verified", {"verified": False}, PASSWORD, 403),
    ],
)
def test_failed_logins_count_their_reason(client, reason, fields, password, status):
    if fields is not None:
        make_user(**fields)
    with Moves() as moved:
        response = post(client, "login", {"email": "alice@example.com", "password": password})
    assert response.status_code == status
    assert moved.deltas == login_failed(reason)


def test_throttled_login_is_a_failure_of_its_own(client, monkeypatch):
    make_user()
    monkeypatch.setattr(
        throttling, "refusal", lambda attempt: SimpleNamespace(retry_after=3, scope="client")
    )
    with Moves() as moved:
        response = post(client, "login", {"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert moved.deltas == login_failed("throttled")


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(totp, "now", lambda: T0)


def test_two_factor_login_challenge_and_verification_results(client, clock):
    make_user(totp_secret=SECRET, totp_enabled=True)
    with Moves() as first:
        response = post(client, "login", {"email": "alice@example.com", "password": PASSWORD})
    challenge = response.json()["challenge_token"]
    assert first.deltas == {**login_ok("success", "true"), "auth_2fa_challenges_total{}": 1}

    wrong = totp_code(SECRET, T0, 5)
    with Moves() as bad:
        response = post(client, "login/2fa", {"challenge_token": challenge, "code": wrong})
    assert response.status_code == 401
    assert bad.deltas == {"auth_2fa_verifications_total{result=invalid_code}": 1}

    with Moves() as good:
        response = post(
            client, "login/2fa", {"challenge_token": challenge, "code": totp_code(SECRET, T0)}
        )
    assert response.status_code == 200
    assert good.deltas == {"auth_2fa_verifications_total{result=success}": 1, **TOKENS}

    with Moves() as expired:
        response = post(
            client, "login/2fa", {"challenge_token": challenge, "code": totp_code(SECRET, T0, 1)}
        )
    assert response.status_code == 401
    assert expired.deltas == {"auth_2fa_verifications_total{result=challenge_expired}": 1}


# --- tokens ----------------------------------------------------------------------------------


def refresh(client, token: str):
    return client.post(
        "/api/auth/token/refresh", {"refresh_token": token}, content_type="application/json"
    )


def test_refresh_results_and_reuse(client):
    pair = issue_token_pair(make_user())
    with Moves() as rotated:
        assert refresh(client, pair.refresh_token).status_code == 200
    assert rotated.deltas == {"auth_token_refresh_total{result=success}": 1, **TOKENS}
    with Moves() as reused:
        assert refresh(client, pair.refresh_token).status_code == 401
    assert reused.deltas == {
        "auth_token_refresh_total{result=reuse}": 1,
        "auth_refresh_token_reuse_total{}": 1,
    }
    with Moves() as unknown:
        assert refresh(client, "never-issued").status_code == 401
    assert unknown.deltas == {"auth_token_refresh_total{result=invalid}": 1}


def test_logout_counts_ended_sessions_only(client):
    user = make_user()
    pair = issue_token_pair(user)
    with Moves() as moved:
        for _ in range(2):
            response = client.post(
                "/api/auth/logout",
                {"refresh_token": pair.refresh_token},
                content_type="application/json",
                **identity_headers(user),
            )
            assert response.status_code == 204
    assert moved.deltas == {"auth_logouts_total{}": 1}


# --- sellers ---------------------------------------------------------------------------------

APPLICATION = {
    "business_name": "Acme",
    "seller_type": "company",
    "motivation": "We make furniture by hand and want to reach more buyers.",
}


def seller_post(client, url: str, user: User, body: dict):
    return client.post(url, body, content_type="application/json", **identity_headers(user))


def test_seller_application_transitions(client):
    staff = make_user("staff@example.com", is_staff=True)
    ids = []
    for email in ("a@example.com", "b@example.com"):
        applicant = make_user(email, totp_enabled=True, totp_secret=SECRET)
        with Moves() as submitted:
            response = seller_post(client, "/api/auth/seller/apply", applicant, APPLICATION)
        assert response.status_code == 201, response.content
        assert submitted.deltas == {"auth_seller_applications_total{status=submitted}": 1}
        ids.append(response.json()["id"])
    for application_id, decision, status in (
        (ids[0], "approve", "approved"),
        (ids[1], "reject", "rejected"),
    ):
        url = f"/api/auth/seller/applications/{application_id}/decision"
        with Moves() as decided:
            response = seller_post(client, url, staff, {"decision": decision})
        assert response.status_code == 200, response.content
        assert decided.deltas == {f"auth_seller_applications_total{{status={status}}}": 1}
    with Moves() as again:
        response = seller_post(client, url, staff, {"decision": "approve"})
    assert response.status_code == 409
    assert again.deltas == {}


# --- internal API ----------------------------------------------------------------------------


@pytest.fixture
def internal_key(settings):
    settings.INTERNAL_API_KEYS = parse_api_keys(f"orders:{hash_api_key(KEY)}")


def validate(client, token: str, **headers: str):
    return client.post(
        "/internal/auth/validate-token",
        {"token": token},
        content_type="application/json",
        **headers,
    )


def test_jwt_validation_and_internal_requests_by_caller_and_status(internal_client, internal_key):
    client = internal_client  # requests on the internal listener (backend/tests/conftest.py)
    pair = issue_token_pair(make_user())
    auth = {"HTTP_AUTHORIZATION": f"Bearer {KEY}"}
    with Moves() as valid:
        response = validate(client, pair.access_token, **auth)
        assert response.status_code == 200, response.content
        assert response.json()["active"] is True
    assert valid.deltas == {
        "auth_jwt_validation_total{result=valid}": 1,
        "auth_internal_api_requests_total{caller=orders,status=200}": 1,
    }
    with Moves() as malformed:
        assert validate(client, "not-a-jwt", **auth).json() == {"active": False}
    assert malformed.deltas == {
        "auth_jwt_validation_total{result=malformed}": 1,
        "auth_internal_api_requests_total{caller=orders,status=200}": 1,
    }
    with Moves() as anonymous:
        assert validate(client, pair.access_token).status_code == 401
        assert (
            validate(client, pair.access_token, HTTP_AUTHORIZATION="Bearer wrong-key").status_code
            == 401
        )
    assert anonymous.deltas == {"auth_internal_api_requests_total{caller=anonymous,status=401}": 2}


# --- scrape-time gauges ----------------------------------------------------------------------


def gauges() -> dict[str, float]:
    from auth_backend.core.metrics import scrape_time_collectors

    values = {}
    for collector in scrape_time_collectors():
        for family in collector.collect():
            assert family.type == "gauge"
            for sample in family.samples:
                values[sample.name] = sample.value
    return values


def test_scrape_time_gauges_read_the_database():
    OutboxEvent.objects.all().delete()
    assert gauges() == {
        "auth_seller_applications_pending": 0,
        "auth_active_sessions": 0,
        "auth_outbox_backlog": 0,
        "auth_outbox_oldest_unpublished_age_seconds": 0,
    }
    user = make_user()
    for email, status in (
        ("p1@example.com", "pending"),
        ("p2@example.com", "pending"),
        ("r@example.com", "rejected"),
    ):
        SellerApplication.objects.create(
            user=make_user(email),
            business_name="B",
            seller_type="company",
            motivation="m",
            status=status,
            decided_at=None if status == "pending" else timezone.now(),
        )
    issue_token_pair(user)
    issue_token_pair(user)
    revoke_family_of(issue_token_pair(user).refresh_token, reason="logout")
    expired = issue_token_pair(user)
    RefreshToken.objects.filter(token_hash=hash_refresh_token(expired.refresh_token)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    now = timezone.now()
    OutboxEvent.objects.all().delete()
    OutboxEvent.objects.create(event_type="x", occurred_at=now - timedelta(seconds=120))
    OutboxEvent.objects.create(event_type="x", occurred_at=now - timedelta(seconds=30))
    OutboxEvent.objects.create(
        event_type="x", occurred_at=now - timedelta(seconds=900), published_at=now
    )

    values = gauges()
    assert values["auth_seller_applications_pending"] == 2
    assert values["auth_active_sessions"] == 2
    assert values["auth_outbox_backlog"] == 2
    assert 120 <= values["auth_outbox_oldest_unpublished_age_seconds"] < 130


def test_a_failing_query_omits_its_gauge_only(monkeypatch, caplog):
    from django.db import DatabaseError

    from auth_backend.tokens import selectors

    def broken() -> int:
        raise DatabaseError("connection lost")

    monkeypatch.setattr(selectors, "active_session_count", broken)
    with caplog.at_level(logging.ERROR, logger="auth_backend.core.metrics"):
        values = gauges()
    assert "auth_active_sessions" not in values
    assert set(values) == {
        "auth_seller_applications_pending",
        "auth_outbox_backlog",
        "auth_outbox_oldest_unpublished_age_seconds",
    }
    assert any(getattr(r, "metric", None) == "auth_active_sessions" for r in caplog.records)
