"""Prometheus metrics of the edge-trace plugin server, listed in
docs/plugins/edge-trace.md (served on ``edge_trace.DEFAULT_METRICS_PORT``).

Registered once at import in ``prometheus_client``'s default registry, so they are recorded
whether or not the HTTP server runs (unit tests). Every ``record_*`` helper swallows its own
errors (logged at debug): a metric must never fail a request or stop the exporter.

Label values are bounded: ``header`` is one of ``traceparent``, ``tracestate``, ``b3``,
``x-b3``; reasons and outcomes are the fixed strings of the parsers and the exporter.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from edge_plugins.metrics_server import children, safely

SPANS_STARTED = Counter(
    "edge_trace_spans_started_total",
    "Gateway server spans started (one per request through the access phase), by sampled",
    ["sampled"],
)
SPANS_EXPORTED = Counter(
    "edge_trace_spans_exported_total",
    "Spans accepted by the OTLP collector",
)
SPANS_DROPPED = Counter(
    "edge_trace_spans_dropped_total",
    "Sampled spans not exported, by reason (queue_full, export_failed, rejected, "
    "encode_failed, pending_overflow, shutdown)",
    ["reason"],
)
INVALID_CONTEXT = Counter(
    "edge_trace_invalid_incoming_context_total",
    "Incoming trace-context headers ignored or repaired, by header and reason",
    ["header", "reason"],
)
REQUEST_IDS = Counter(
    "edge_trace_request_ids_total",
    "Request ids by outcome (accepted, generated, replaced_invalid, replaced_duplicate, "
    "replaced_untrusted)",
    ["outcome"],
)
EXPORT_QUEUE = Gauge(
    "edge_trace_export_queue_spans",
    "Spans waiting in the OTLP export queue",
)

_spans_started = children(SPANS_STARTED)
_spans_dropped = children(SPANS_DROPPED)
_invalid_context = children(INVALID_CONTEXT)
_request_ids = children(REQUEST_IDS)


def record_span_started(sampled: bool) -> None:
    safely(
        lambda: _spans_started("true" if sampled else "false").inc(),
        "edge_trace_spans_started_total",
    )


def record_exported(count: int) -> None:
    safely(lambda: SPANS_EXPORTED.inc(count), "edge_trace_spans_exported_total")


def record_dropped(reason: str, count: int = 1) -> None:
    safely(lambda: _spans_dropped(reason).inc(count), "edge_trace_spans_dropped_total")


def record_invalid_context(header: str, reason: str) -> None:
    safely(
        lambda: _invalid_context(header, reason).inc(),
        "edge_trace_invalid_incoming_context_total",
    )


def record_request_id(outcome: str) -> None:
    safely(lambda: _request_ids(outcome).inc(), "edge_trace_request_ids_total")


def add_queued(delta: int) -> None:
    """Spans entering (positive) or leaving (negative) any export queue of this process."""
    safely(lambda: EXPORT_QUEUE.inc(delta), "edge_trace_export_queue_spans")
