"""edge-jwt's plugin server killed and hung in the middle of a request.

Kong fails open: when the server dies or stops answering, it logs the error and proxies the
request without the plugin (docs/kong-compatibility.md; kong/runloop/plugin_servers/rpc/
mp_rpc.lua). No token check, no header stripping — so the request reaches the backend
without a gateway assertion, and the backend's own check (docs/identity-assertion.md) makes
it anonymous: the protected route answers 401, even to a client that forges ``X-User-Id``.
The harness respawns a dead server (at most once a second, kong/runloop/plugin_servers/
process.lua) and the route works again without a gateway restart.

The request is caught mid-flight while edge-jwt fetches a slow JWKS for a kid it has not
seen (the fetch is inside the plugin's handler, between two PDK calls).
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.faults.stack import (
    JWKS_BOUND,
    PLUGIN_BOUND,
    PROFILE,
    PROMPT,
    FaultStack,
    assert_backend_refused,
    unknown_kid_token,
    wait_until,
)
from tests.support.backend import User

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both

Answers = list[httpx.Response | httpx.HTTPError]


def in_flight(stack: FaultStack, user: User, bound: float) -> tuple[threading.Thread, Answers]:
    """Send a protected request (forged identity headers too) that waits inside edge-jwt on a
    slow JWKS fetch; returns once the fetch has reached the JWKS endpoint."""
    answers: Answers = []
    spoofed = {"X-User-Id": user.id, "X-User-Email": user.email}
    sent = stack.jwks.client_bytes

    def send() -> None:
        try:
            answers.append(stack.profile(unknown_kid_token(user), bound=bound, **spoofed))
        except httpx.HTTPError as exc:  # kept for the assertion in the test's thread
            answers.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    deadline = time.monotonic() + PROMPT
    while stack.jwks.client_bytes == sent:
        assert time.monotonic() < deadline, "the request never reached edge-jwt's JWKS fetch"
        time.sleep(0.01)
    return thread, answers


def answer_of(thread: threading.Thread, answers: Answers, bound: float) -> httpx.Response:
    thread.join(bound + 1)
    assert answers, "no answer within the client's timeout"
    (answer,) = answers
    assert isinstance(answer, httpx.Response), repr(answer)
    return answer


def test_killed_mid_request_fails_closed_at_the_backend_and_is_respawned(
    stack: FaultStack,
) -> None:
    user = stack.sign_up()
    process = stack.gateway.gateway.processes["edge-jwt"]
    pid = process.pid
    assert stack.profile(user.access_token).status_code == 200
    with stack.jwks.fault("delay", delay_ms=1500):
        thread, answers = in_flight(stack, user, JWKS_BOUND)
        process.kill()  # SIGKILL: the socket closes under Kong's pending call
        response = answer_of(thread, answers, JWKS_BOUND)
    assert_backend_refused(response)  # proxied without edge-jwt; the backend said no
    # Meanwhile, and until the new server listens, nobody gets in with a forged identity.
    spoofed = {"X-User-Id": user.id, "X-User-Email": user.email}
    forged_identity = stack.request("GET", PROFILE, bound=PLUGIN_BOUND, headers=spoofed)
    assert forged_identity.status_code == 401, forged_identity.text
    wait_until(lambda: process.pid not in (None, pid), 5, "edge-jwt was not respawned")
    stack.gateway.run(process.wait_ready())
    # The respawned server has lost its instances; Kong restarts them: the same token works.
    response = stack.profile(user.access_token, bound=JWKS_BOUND)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id


def test_hung_mid_request_times_out_closed_and_recovers(stack: FaultStack) -> None:
    user = stack.sign_up()
    process = stack.gateway.gateway.processes["edge-jwt"]
    assert stack.profile(user.access_token).status_code == 200
    bound = JWKS_BOUND + PLUGIN_BOUND
    try:
        with stack.jwks.fault("delay", delay_ms=1500):
            thread, answers = in_flight(stack, user, bound)
            process.kill(signal.SIGSTOP)  # alive, listening, answering nothing
            response = answer_of(thread, answers, bound)
        assert_backend_refused(response)  # Kong's socket timeout, then on without edge-jwt
        # Still hung: a valid token is not enough either (nothing can vouch for it).
        assert_backend_refused(stack.profile(user.access_token, bound=PLUGIN_BOUND))
    finally:
        process.kill(signal.SIGCONT)
    response = stack.profile(user.access_token, bound=PLUGIN_BOUND)
    assert response.status_code == 200, response.text
