"""The OTLP collector down or hung: tracing is best effort (edge-trace posts a batch once,
edge_plugins/trace/export.py; the backend's SDK exports in the background,
backend/docs/tracing.md), so clients see exactly what they would with a working collector,
with no request held by an export, and traces flow again once the collector is back.
"""

from __future__ import annotations

import pytest

from tests.faults.stack import PROMPT, FaultStack
from tests.support.otlp_receiver import ReceivedSpan

pytestmark = [pytest.mark.postgres, pytest.mark.redis]  # the stack needs both


def services_of(spans: list[ReceivedSpan], trace_id: str) -> set[str]:
    """The services that have sent spans of ``trace_id``."""
    return {s.service_name for s in spans if s.trace_id == trace_id}


def trace_id_of(traceresponse: str) -> str:
    return traceresponse.split("-")[1]


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_collector_down_changes_no_response_and_tracing_resumes(
    stack: FaultStack, mode: str
) -> None:
    user = stack.sign_up()
    with stack.otlp.fault(mode):
        answers = [stack.request("GET", "/api/auth/health/live/") for _ in range(10)]
        answers += [stack.profile(user.access_token) for _ in range(5)]
        anonymous = stack.request("GET", "/api/auth/profile")
    assert [r.status_code for r in answers] == [200] * 15
    assert all(r.json()["id"] == user.id for r in answers[10:])
    assert anonymous.status_code == 401
    # Every response still carries its trace context and request id.
    assert all("traceresponse" in r.headers and "X-Request-ID" in r.headers for r in answers)

    back = stack.profile(user.access_token, bound=PROMPT)
    assert back.status_code == 200
    trace_id = trace_id_of(back.headers["traceresponse"])
    stack.receiver.wait_for(
        lambda spans: {"kong-edge", "auth-backend"} <= services_of(spans, trace_id), timeout=10
    )
