"""The JWKS endpoint down and slow, seen from edge-jwt: the keys it holds keep deciding the
tokens they signed; a token it cannot decide (a kid it has not seen, the refetch failing) is
Kong's 503 with Retry-After within the fetch timeout — never let through, never hung.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.stack import JWKS_BOUND, FaultStack, unknown_kid_token
from tests.support.backend import bearer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both


def assert_keys_unavailable(response: httpx.Response) -> None:
    """Kong's own 503 from edge-jwt: not the client's fault, try again later."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert set(response.json()) == {"message", "request_id"}


def test_jwks_down_known_keys_decide_unknown_kid_is_503(stack: FaultStack) -> None:
    user = stack.sign_up()
    assert stack.profile(user.access_token).status_code == 200  # the keys are cached now
    with stack.jwks.fault("refuse"):
        unknown = stack.profile(unknown_kid_token(user), bound=JWKS_BOUND)
        assert_keys_unavailable(unknown)
        for _ in range(3):
            response = stack.profile(user.access_token)
            assert response.status_code == 200, response.text
        # No token still decides without keys; a garbage one too.
        assert stack.request("GET", "/api/auth/profile").status_code == 401
        assert stack.profile("not-a-jwt").status_code == 401
    # Back: once the fetch back-off and the refetch limit (1 s here) have passed, an unknown
    # kid is looked up for real and rejected as the client's fault.
    for _ in range(20):
        rejected = stack.profile(unknown_kid_token(user), bound=JWKS_BOUND)
        if rejected.status_code != 503:
            break
        time.sleep(0.5)
    assert rejected.status_code == 401, rejected.text


def test_jwks_slow_is_bounded_by_the_fetch_timeout(stack: FaultStack) -> None:
    user = stack.sign_up()
    route = "/jwks-slow/profile"  # an edge-jwt of its own: a fresh key manager
    assert stack.request("GET", route, headers=bearer(user.access_token)).status_code == 200
    # Every reply from the JWKS endpoint held back past edge-jwt's read timeout (2 s).
    with stack.jwks.fault("delay", delay_ms=4000):
        sent = stack.jwks.client_bytes
        unknown = stack.request(
            "GET", route, bound=JWKS_BOUND, headers=bearer(unknown_kid_token(user))
        )
        assert_keys_unavailable(unknown)
        assert stack.jwks.client_bytes > sent  # the refetch did go out, and timed out
        response = stack.request("GET", route, headers=bearer(user.access_token))
        assert response.status_code == 200, response.text
