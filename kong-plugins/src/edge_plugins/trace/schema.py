"""Every edge-trace setting, once: Kong's schema (``edge_trace.Schema``), the defaults and
choices :class:`~edge_plugins.trace.config.TraceConfig` applies, and
docs/plugins/edge-trace.md.

What Kong's schema cannot check (the regex compiles, CIDRs parse, the header is a token,
the endpoint is a URL) is checked by ``TraceConfig.from_kong`` at StartInstance.
"""

from __future__ import annotations

from edge_plugins.kong_schema import Field, FieldTable, string_items
from edge_plugins.trace.request_id import DEFAULT_HEADER, DEFAULT_PATTERN, FORMATS

RESPONSE_FORMATS = ("traceresponse", "server-timing")

FIELDS = FieldTable(
    # Incoming context: a trust boundary ignores it all (new trace, tracestate removed).
    Field(
        "trust_incoming_context",
        "boolean",
        "Continue the caller's trace (`traceparent`, `tracestate`); off: every request starts "
        "a new trace and incoming `tracestate` is removed.",
        default=True,
    ),
    Field(
        "accept_b3",
        "boolean",
        "Also accept Zipkin B3 headers as the incoming context (consumed, not forwarded).",
        default=False,
    ),
    Field(
        "sample_ratio",
        "number",
        "Share of new traces sampled; a trusted parent's sampling decision is kept.",
        default=1.0,
        between=(0, 1),
    ),
    Field(
        "request_id_header",
        "string",
        "The request id header: accepted from the client when it matches "
        "`request_id_pattern`, else generated; sent upstream and on the response.",
        default=DEFAULT_HEADER,
        len_min=1,
    ),
    Field(
        "request_id_pattern",
        "string",
        "Regular expression a client's request id must match to be kept.",
        default=DEFAULT_PATTERN,
        len_min=1,
    ),
    Field(
        "request_id_trusted_ips",
        "array",
        "Addresses or CIDR blocks whose request ids are kept; empty: any client's are.",
        default=(),
        elements=string_items(),
    ),
    Field(
        "request_id_format",
        "string",
        "Format of a generated request id.",
        default="uuid4",
        one_of=FORMATS,
    ),
    Field(
        "response_trace_context",
        "boolean",
        "Send the trace context on the response (W3C Trace Context Level 3 draft).",
        default=False,
    ),
    Field(
        "response_trace_format",
        "string",
        "How the response carries the trace context: a `traceresponse` header or a "
        "`Server-Timing` entry.",
        default="traceresponse",
        one_of=RESPONSE_FORMATS,
    ),
    # Referenceable, so one kong.yml can name a per-environment collector
    # ({vault://env/...}); a reference that does not resolve reads as "" (Kong's rule),
    # which also means no export.
    Field(
        "otlp_endpoint",
        "string",
        "OTLP/HTTP protobuf traces URL (e.g. http://collector:4318/v1/traces); unset or "
        "empty: spans are not exported.",
        match="^https?://",
        referenceable=True,
    ),
    Field(
        "otlp_timeout_ms",
        "integer",
        "Timeout of one export request, in milliseconds.",
        default=2000,
        between=(50, 30000),
    ),
    Field(
        "otlp_queue_size",
        "integer",
        "Spans waiting for export at most; more are dropped (counted).",
        default=2048,
        between=(1, 100000),
    ),
    Field(
        "otlp_batch_size",
        "integer",
        "Spans per export request at most; not above `otlp_queue_size`.",
        default=512,
        between=(1, 10000),
    ),
    Field(
        "otlp_flush_interval_ms",
        "integer",
        "Longest wait before a partial batch is exported, in milliseconds.",
        default=1000,
        between=(10, 60000),
    ),
    Field(
        "service_name",
        "string",
        "The `service.name` resource attribute of exported spans.",
        default="kong-edge",
        len_min=1,
    ),
)
