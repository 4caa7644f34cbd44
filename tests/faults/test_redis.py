"""Redis stopped and slowed, for the whole edge at once: the backend (identity assertions,
readiness, sign-in throttle), edge-jwt (revocations) and edge-rate-limit (counters).

What must hold (docs/identity-assertion.md "Redis down", docs/rate-limiting.md
``on_store_failure: local``): protected routes answer the backend's 401 while the
assertion check cannot ask Redis, public routes keep working, rate limits keep limiting
(per node, at limit ÷ expected_nodes), readiness says 503 and liveness 200, and once Redis is
back the same session works again with nothing lost.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.stack import (
    PROMPT,
    REDIS_BOUND,
    FaultStack,
    assert_backend_refused,
    client_ip,
)
from tests.support.backend import PASSWORD, bearer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both

REVOCATION_CACHE_SECONDS = 1.0  # edge_identity.store: how long a revocation answer is kept

REGISTER_LIMIT = 3  # kong/kong.yml: auth-register, 3 a minute per client address, 1 node

FAULTS = {
    "stopped": ("refuse", None),
    # Every reply held back longer than any Redis timeout on the request path (edge-rate-limit
    # 50 ms, the backend's 500 ms): slow is as good as down, and must cost no more.
    "slowed": ("delay", 1500.0),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_redis_fault_closes_protected_routes_and_keeps_the_rest_working(
    stack: FaultStack, fault: str
) -> None:
    user = stack.sign_up()
    assert stack.profile(user.access_token).status_code == 200
    rejected = "auth_gateway_assertion_rejected_total"
    unavailable = stack.backend_metric(rejected, reason="unavailable")
    mode, delay_ms = FAULTS[fault]
    with stack.redis.fault(mode, delay_ms=delay_ms):
        # The token is valid and edge-jwt passes it, but the backend cannot check the
        # assertion's replay and revocation state: anonymous, its own 401, never the profile.
        forged = stack.profile(user.access_token, bound=REDIS_BOUND, **{"X-User-Id": user.id})
        assert_backend_refused(forged)
        assert_backend_refused(stack.profile(user.access_token, bound=REDIS_BOUND))
        assert stack.backend_metric(rejected, reason="unavailable") >= unavailable + 2
        # Public routes work: liveness, and signing in (the backend's throttle fails open
        # behind the edge's limit; the session is written to PostgreSQL).
        live = stack.request("GET", "/api/auth/health/live/", bound=REDIS_BOUND)
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        ready = stack.request("GET", "/api/auth/health/ready/", bound=REDIS_BOUND)
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["code"] == "service_unavailable"
        during = stack.login(user.email, bound=REDIS_BOUND)

        # The sign-up limit still holds, counted by this node alone (on_store_failure local).
        ip = client_ip()
        taken = {"email": user.email, "password": PASSWORD}  # 202 all the same, nothing made
        answers = [
            stack.request("POST", "/api/auth/register", ip=ip, bound=REDIS_BOUND, json=taken)
            for _ in range(REGISTER_LIMIT + 1)
        ]
        assert [r.status_code for r in answers] == [202] * REGISTER_LIMIT + [429]
        assert int(answers[-1].headers["Retry-After"]) >= 1

    # Back: the same sessions, from before and during the outage, open the profile again.
    for token in (user.access_token, during["access_token"]):
        response = stack.profile(token, bound=PROMPT)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user.id
    assert stack.request("GET", "/api/auth/health/ready/").status_code == 200
    # Nothing lost: both sign-ins wait in the outbox for the relay (test_outbox_relay.py).
    rows = stack.sql(
        "SELECT count(*) FROM events_outboxevent WHERE subject_id = %s AND event_type = %s",
        user.id,
        "user.login_succeeded",
    )
    assert rows == [(2,)]


def test_a_redis_restart_between_requests_refuses_nobody(stack: FaultStack) -> None:
    """Redis restarts while the backend is idle: its pooled connections are dead, and the
    next requests must reconnect instead of failing their identity check once each."""
    user = stack.sign_up()
    for _ in range(4):  # open connections in both gunicorn workers' pools
        assert stack.profile(user.access_token).status_code == 200
    stack.redis.set_mode("refuse")  # every open connection reset, as a restart does
    stack.redis.set_mode("pass")
    answers = [stack.profile(user.access_token) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6, answers[0].text


def test_a_logout_during_the_outage_stays_a_logout(stack: FaultStack) -> None:
    """Signing out works without Redis (the database is the source of truth), but its
    announcement to Redis is lost; once Redis is back the session must stay closed."""
    user = stack.sign_up()
    assert stack.profile(user.access_token).status_code == 200
    with stack.redis.fault("refuse"):
        out = stack.request(
            "POST",
            "/api/auth/logout",
            bound=REDIS_BOUND,
            headers=bearer(user.access_token),
            json={"refresh_token": user.refresh_token},
        )
        assert out.status_code == 204, out.text
    # The backend keeps a token's revocation answer for at most a second
    # (auth_backend.identity.store): after that the session is closed for good.
    time.sleep(REVOCATION_CACHE_SECONDS)
    for _ in range(3):
        assert_backend_refused(stack.profile(user.access_token))
    refreshed = stack.request(
        "POST", "/api/auth/token/refresh", json={"refresh_token": user.refresh_token}
    )
    assert refreshed.status_code == 401, refreshed.text
