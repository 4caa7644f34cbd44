"""PostgreSQL stopped under the running backend: it says it is not ready but stays alive,
refuses what needs the database without opening anything, and recovers by itself when the
database is back (no restart: the same gunicorn master serves before, during and after).
"""

from __future__ import annotations

import httpx
import pytest

from tests.faults.stack import POSTGRES_BOUND, PROMPT, FaultStack
from tests.support.backend import PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both


def test_postgres_stopped_readiness_503_liveness_200_and_recovery_without_restart(
    stack: FaultStack,
) -> None:
    user = stack.sign_up()
    assert stack.profile(user.access_token).status_code == 200
    assert stack.backend.proc is not None
    master = stack.backend.proc.pid
    with stack.postgres.fault("refuse"):
        live = stack.request("GET", "/api/auth/health/live/", bound=POSTGRES_BOUND)
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        for _ in range(2):  # each gunicorn worker may answer; both must say so
            ready = stack.request("GET", "/api/auth/health/ready/", bound=POSTGRES_BOUND)
            assert ready.status_code == 503, ready.text
            assert ready.json()["error"]["code"] == "service_unavailable"
        # What needs the database is refused, never answered as if the caller were someone:
        # the profile with a valid token, and signing in.
        profile = stack.profile(user.access_token, bound=POSTGRES_BOUND)
        assert_unavailable(profile)
        login = stack.request(
            "POST",
            "/api/auth/login",
            bound=POSTGRES_BOUND,
            json={"email": user.email, "password": PASSWORD},
        )
        assert_unavailable(login)
    assert stack.backend.proc.poll() is None and stack.backend.proc.pid == master
    # Back without a restart: every worker reconnects on its next request.
    for _ in range(2):
        ready = stack.request("GET", "/api/auth/health/ready/", bound=PROMPT)
        assert ready.status_code == 200, ready.text
    response = stack.profile(user.access_token)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email  # the user written before the outage
    assert stack.login(user.email)["access_token"]


def assert_unavailable(response: httpx.Response) -> None:
    """The backend's JSON 503, with nothing of the failure in it."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"]["code"] == "service_unavailable", body
    text = response.text.lower()
    assert "traceback" not in text and "psycopg" not in text and "operationalerror" not in text
