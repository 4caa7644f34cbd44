"""Exemplars: the trace a latency observation belongs to, for Grafana to open it in Jaeger.

A plugin that times something while handling a request attaches ``{"trace_id": …}`` to the
histogram observation (prometheus_client keeps the last exemplar per bucket and serves it in
the OpenMetrics exposition, which Prometheus asks for when it runs with
``--enable-feature=exemplar-storage``). The trace id comes from the ``traceparent`` header
edge-trace (priority 100000, before every other plugin) put on the upstream request: Kong
edits the request in place, so a later plugin's ``kong.request.get_headers()`` already holds
it — no extra PDK call. Only sampled traces are linked: an unsampled trace is never exported,
so its id would lead nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_plugins.trace.traceparent import InvalidTraceparent, parse_traceparent

TRACE_ID_LABEL = "trace_id"  # Grafana's exemplarTraceIdDestinations name (datasources.yml)


def trace_exemplar(headers: Mapping[str, Any]) -> dict[str, str] | None:
    """``{"trace_id": …}`` of the request whose lower-case header multimap is ``headers``, or
    ``None`` when it carries no single valid, sampled ``traceparent``."""
    value = headers.get("traceparent")
    if isinstance(value, list | tuple):
        if len(value) != 1:
            return None  # several traceparent headers are invalid as a whole (W3C)
        value = value[0]
    if not isinstance(value, str):
        return None
    try:
        parent = parse_traceparent(value)
    except InvalidTraceparent:
        return None
    return {TRACE_ID_LABEL: parent.trace_id} if parent.sampled else None
