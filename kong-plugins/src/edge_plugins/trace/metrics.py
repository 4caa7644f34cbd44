"""Prometheus metrics of the edge-trace plugin server (DESIGN.md §3.4: port 9101).

Registered once at import in ``prometheus_client``'s default registry, so they are recorded
whether or not the HTTP server runs (unit tests). Every ``record_*`` helper swallows its own
errors (logged at debug): a metric must never fail a request or stop the exporter.

Label values are bounded: ``header`` is one of ``traceparent``, ``tracestate``, ``b3``,
``x-b3``; reasons and outcomes are the fixed strings of the parsers and the exporter.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

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


def record_span_started(sampled: bool) -> None:
    try:
        SPANS_STARTED.labels(sampled="true" if sampled else "false").inc()
    except Exception:  # pragma: no cover - a metric must never fail a request
        log.debug("metric edge_trace_spans_started_total not recorded", exc_info=True)


def record_exported(count: int) -> None:
    try:
        SPANS_EXPORTED.inc(count)
    except Exception:  # pragma: no cover
        log.debug("metric edge_trace_spans_exported_total not recorded", exc_info=True)


def record_dropped(reason: str, count: int = 1) -> None:
    try:
        SPANS_DROPPED.labels(reason=reason).inc(count)
    except Exception:  # pragma: no cover
        log.debug("metric edge_trace_spans_dropped_total not recorded", exc_info=True)


def record_invalid_context(header: str, reason: str) -> None:
    try:
        INVALID_CONTEXT.labels(header=header, reason=reason).inc()
    except Exception:  # pragma: no cover
        log.debug("metric edge_trace_invalid_incoming_context_total not recorded",
                  exc_info=True)


def record_request_id(outcome: str) -> None:
    try:
        REQUEST_IDS.labels(outcome=outcome).inc()
    except Exception:  # pragma: no cover
        log.debug("metric edge_trace_request_ids_total not recorded", exc_info=True)


def add_queued(delta: int) -> None:
    """Spans entering (positive) or leaving (negative) any export queue of this process."""
    try:
        EXPORT_QUEUE.inc(delta)
    except Exception:  # pragma: no cover
        log.debug("metric edge_trace_export_queue_spans not recorded", exc_info=True)
