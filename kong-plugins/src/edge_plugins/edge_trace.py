"""``edge-trace``: W3C trace context, request ids and the gateway span at the edge.

A thin Kong entry over the PDK-free core in :mod:`edge_plugins.trace`. Priority 100000, so
it runs before every other plugin and their rejections already carry the request id.

PDK round trips per request (``PDK_CALLS``; each one MessagePack-RPC exchange with Kong):

1. ``kong.request.get_headers(1000)`` — first, before any work (kong-pdk's own bridge,
   ``--kong-pdk-bridge``, serialises the work a handler does before its first PDK call
   across all requests); all trace headers and the request id come from this one read;
2. ``kong.client.get_ip()`` — only when ``request_id_trusted_ips`` is configured;
3. ``kong.service.request.set_headers`` — ``traceparent`` (parent = the gateway span),
   ``tracestate``, the request id, and removals (an empty list clears a header: a dropped
   ``tracestate``, consumed B3 headers) in one call;
4. ``kong.response.set_headers`` — the request id (and ``traceresponse`` when
   ``response_trace_context``). Kong keeps response headers set in access on every
   response, including a later plugin's ``kong.response.exit``/``error``
   (kong/pdk/response.lua writes ``ngx.header``), so edge rejections echo the id too.

In the log phase, ``kong.log.serialize()`` with ``otlp_endpoint`` (method, URI, URL, the
request headers as sent upstream — our ``traceparent`` tells the span id — client IP,
route, service, status, latencies, start); without it no export, nothing to ask.

The log phase is declared only by a server started with ``--export-spans`` (on both the
start and the query command): Kong reads a plugin's phases once, from ``--dump``
(kong/runloop/plugin_servers/process.lua), and for every request of a plugin with a log
phase runs ``kong.log.serialize()``, copies the request's context and starts a timer
(kong/runloop/plugin_servers/plugin.lua ``build_phases``), then sends one more event, even
when nothing is exported. Without the flag the server serves :class:`AccessOnlyPlugin`: a
config with ``otlp_endpoint`` is logged as not exported, requests are traced as ever.

What access must hand to log and serialize lacks (the caller's span id, the access time)
sits in a bounded process-wide map keyed by the gateway span id
(:mod:`edge_plugins.trace.pending`), never on ``self`` (one instance per worker).
Known limit: ``serialize`` carries the first 100 request headers, so a request with more
than 100 headers may lose its gateway span (its trace headers still reach the upstream).

Tracing never blocks traffic: the failure policy is *open* (a bug or an unusable config is
logged and the request goes on without trace headers), and export happens in a background
worker with a bounded queue (:mod:`edge_plugins.trace.export`).

The plugin server serves Prometheus metrics on ``--metrics-port`` of its start command
(default ``DEFAULT_METRICS_PORT``; ``0`` disables them): Kong gives plugin servers no
environment (:mod:`edge_plugins.server`). The reference, generated from this module and
:mod:`edge_plugins.trace.schema`: docs/plugins/edge-trace.md.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from edge_plugins.guard import FailurePolicy, guarded
from edge_plugins.logs import EventIds, bind_event
from edge_plugins.pdk_calls import PdkCalls
from edge_plugins.trace import metrics
from edge_plugins.trace.access import plan_access
from edge_plugins.trace.config import InvalidTraceConfig, TraceConfig
from edge_plugins.trace.pending import PENDING, PendingSpan
from edge_plugins.trace.schema import FIELDS

if TYPE_CHECKING:
    from edge_plugins.trace.export import BatchSpanExporter

NAME = "edge-trace"
version = importlib.metadata.version("edge-kong-plugins")
priority = 100000

DEFAULT_METRICS_PORT = 9101
METRICS_MODULE = "edge_plugins.trace.metrics"
MAX_REQUEST_HEADERS = 1000

# Kong plugin schema (kong/db/schema/metaschema.lua), from the one table of settings.
Schema = FIELDS.kong_schema()

_READ = "kong.request.get_headers"
_WRITE = ("kong.service.request.set_headers", "kong.response.set_headers")
PDK_CALLS = (
    PdkCalls("access", "any request", (_READ, *_WRITE)),
    PdkCalls("access", "`request_id_trusted_ips` set", (_READ, "kong.client.get_ip", *_WRITE)),
    PdkCalls("log", "`otlp_endpoint` set, started with `--export-spans`", ("kong.log.serialize",)),
    PdkCalls("log", "no `otlp_endpoint`", ()),
)
FAILURE_BEHAVIOUR = (
    "Tracing never blocks traffic: the failure policy is open. A bug, or a config that "
    "Kong accepts but the plugin cannot use, is logged and the request goes on without "
    "trace headers. Export runs in a background worker with a bounded queue: a slow or "
    "down collector drops spans (counted in `edge_trace_spans_dropped_total`), never "
    "requests."
)

log = logging.getLogger("edge_plugins.edge_trace")


class TraceConfigUnusable(RuntimeError):
    """The instance's config was rejected at StartInstance; the request goes on untraced."""


EXPORT_SPANS_FLAG = "--export-spans"


class AccessOnlyPlugin:
    """One instance per plugin config and Kong worker (plugin.lua); the pending-span map
    and the exporters are process-wide. No log phase: spans are not exported (served
    without ``--export-spans``)."""

    exports_spans = False

    def __init__(self, config: dict[str, Any]) -> None:
        # StartInstance runs this: keep it cheap and never raise for a schema-valid config
        # (a raise here is Kong's 500 for every request until the config changes).
        self.failure_policy = FailurePolicy.OPEN
        self.trace_config: TraceConfig | None = None
        self.config_error: str | None = None
        self.exporter: BatchSpanExporter | None = None
        try:
            self.trace_config = TraceConfig.from_kong(config)
        except InvalidTraceConfig as exc:
            self.config_error = str(exc)
            log.error("edge-trace config rejected (requests go on untraced): %s", exc)
            return
        if self.trace_config.export is not None:
            if not self.exports_spans:
                log.error(
                    "edge-trace: otlp_endpoint is set but this server was started without "
                    "%s (no log phase): no span is exported",
                    EXPORT_SPANS_FLAG,
                )
                return
            from edge_plugins.trace.export import exporter_for

            self.exporter = exporter_for(self.trace_config.export, version)

    @guarded
    def access(self, kong: Any) -> None:
        headers = kong.request.get_headers(MAX_REQUEST_HEADERS)  # first: see module doc
        config = self.trace_config
        if config is None:
            raise TraceConfigUnusable(self.config_error)
        client_ip = kong.client.get_ip() if config.request_id.needs_client_ip else None
        plan = plan_access(config, headers, client_ip)
        context = plan.context
        bind_event(EventIds(plan.request_id.value, context.trace_id, context.span_id))
        if context.sampled and self.exporter is not None:
            PENDING.put(
                context.span_id,
                PendingSpan(context.trace_id, context.parent_span_id, time.time_ns()),
            )
        metrics.record_span_started(context.sampled)
        metrics.record_request_id(plan.request_id.outcome)
        for header, reason in plan.problems:
            metrics.record_invalid_context(header, reason)
        kong.service.request.set_headers(plan.upstream_headers)
        kong.response.set_headers(plan.response_headers)


class Plugin(AccessOnlyPlugin):
    """edge-trace with its log phase: exports the gateway span of every sampled request to
    ``otlp_endpoint`` (served with ``--export-spans``)."""

    exports_spans = True

    @guarded
    def log(self, kong: Any) -> None:
        exporter = self.exporter
        if exporter is None or self.trace_config is None:
            return  # nothing to export: no PDK call at all
        serialized = kong.log.serialize()
        from edge_plugins.trace.span import span_from_log

        span = span_from_log(serialized, PENDING, self.trace_config.request_id.header)
        if span is not None:
            exporter.submit(span)


def served_plugin(argv: list[str]) -> type[AccessOnlyPlugin]:
    """The class a server started with ``argv`` serves; removes ``--export-spans``."""
    if EXPORT_SPANS_FLAG in argv:
        argv.remove(EXPORT_SPANS_FLAG)
        return Plugin
    return AccessOnlyPlugin


def main() -> None:
    from edge_plugins.server import run_plugin

    plugin = served_plugin(sys.argv)
    preload = ("edge_plugins.trace.export", "edge_plugins.trace.span") if plugin is Plugin else ()
    run_plugin(sys.modules[__name__], preload=preload, plugin=plugin)


if __name__ == "__main__":
    main()
