"""The whole access-phase decision of edge-trace, as one pure function.

Given the request headers (and the peer address when a trusted-networks rule needs it),
:func:`plan_access` answers everything the Kong entry then writes with exactly two PDK
calls: the upstream headers (``traceparent``, ``tracestate`` or its removal, consumed B3
headers removed, the request id) and the response headers (the request id, and the trace
context when ``response_trace_context`` is on). A header removal is an empty list:
``kong.service.request.set_headers`` passes it to ``ngx.req.set_header(name, {})``, which
clears the header (lua-resty-core ``set_req_header`` with an empty table and override), so
no separate ``clear_header`` round trip is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_plugins.trace.config import TraceConfig
from edge_plugins.trace.propagation import (
    TRACEPARENT,
    TRACESTATE,
    GatewayContext,
    Problem,
    extract,
    pick_headers,
    start_gateway_span,
)
from edge_plugins.trace.request_id import RequestIdDecision, decide_request_id

HeaderValue = str | list[str]


@dataclass(frozen=True, slots=True)
class AccessPlan:
    context: GatewayContext
    request_id: RequestIdDecision
    upstream_headers: dict[str, HeaderValue]
    response_headers: dict[str, HeaderValue]
    problems: tuple[Problem, ...]


def response_trace_header(config: TraceConfig, context: GatewayContext) -> tuple[str, str]:
    """The trace context returned to the client (Trace Context Level 3 draft).

    The draft's ``traceresponse`` header (``version-traceid-childid-flags``, child id = the
    gateway span) by default; the draft replaced it in 2025 with a ``trace`` metric of
    ``Server-Timing`` (w3c/trace-context#560), available as ``server-timing``.
    """
    if config.response_trace_format == "server-timing":
        return "Server-Timing", f"trace;desc={context.traceparent}"
    return "traceresponse", context.traceparent


def plan_access(
    config: TraceConfig, headers: Mapping[str, Sequence[str] | str], client_ip: str | None = None
) -> AccessPlan:
    """Everything the access phase writes; ``headers`` is ``kong.request.get_headers()``."""
    extraction = extract(headers, trust=config.trust_incoming_context, accept_b3=config.accept_b3)
    context = start_gateway_span(extraction, config.sampler)
    policy = config.request_id
    incoming_ids = pick_headers(headers, (policy.header.lower(),)).get(policy.header.lower())
    request_id = decide_request_id(policy, incoming_ids, client_ip)

    upstream: dict[str, HeaderValue] = {name: [] for name in extraction.clear}
    upstream[TRACEPARENT] = context.traceparent
    if context.tracestate:
        upstream[TRACESTATE] = context.tracestate
    upstream[policy.header] = request_id.value

    response: dict[str, HeaderValue] = {policy.header: request_id.value}
    if config.response_trace_context:
        name, value = response_trace_header(config, context)
        response[name] = value
    return AccessPlan(
        context=context,
        request_id=request_id,
        upstream_headers=upstream,
        response_headers=response,
        problems=extraction.problems,
    )
