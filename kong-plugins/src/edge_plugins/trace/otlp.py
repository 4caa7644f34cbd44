"""OTLP/HTTP protobuf encoding of gateway spans (``ExportTraceServiceRequest``).

The messages are opentelemetry-proto's own, so what we post is what every collector parses.
One request carries one resource (``service.name`` = the plugin's ``service_name``) and one
instrumentation scope (this plugin). Span ``flags`` carry the W3C trace flags in bits 0-7
and, in bits 8-9, that the parent's remoteness is known and whether it is remote (our
parent is always the caller, so remote when present) — the OTLP ``SpanFlags`` convention.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

from edge_plugins.trace.span import AttributeValue, GatewaySpan

SCOPE_NAME = "edge-trace"
CONTENT_TYPE = "application/x-protobuf"


class UnencodableAttribute(TypeError):
    """An attribute value OTLP's ``AnyValue`` cannot carry."""


def _utf8(text: str) -> str:
    """``text`` as protobuf can send it: valid UTF-8 (it refuses surrogates).

    Header values and the URI are the client's bytes (kong.log.serialize); bytes that were
    not UTF-8 reach us as lone surrogates (edge_plugins.server) and become U+FFFD here, so
    one odd ``User-Agent`` cannot fail a whole batch.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that escapes no byte (a JSON \ud800)
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):  # before int: bool is an int in Python
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=_utf8(value))
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(_any_value(v) for v in value)
        return out
    raise UnencodableAttribute(f"cannot encode attribute value of type {type(value).__name__}")


def _attributes(attributes: Mapping[str, AttributeValue]) -> Iterable[KeyValue]:
    return (KeyValue(key=_utf8(key), value=_any_value(value)) for key, value in attributes.items())


def _span(span: GatewaySpan) -> Span:
    flags = span.trace_flags | SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
    if span.remote_parent:
        flags |= SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    out = Span(
        trace_id=bytes.fromhex(span.trace_id),
        span_id=bytes.fromhex(span.span_id),
        parent_span_id=bytes.fromhex(span.parent_span_id) if span.parent_span_id else b"",
        trace_state=_utf8(span.trace_state),
        flags=flags,
        name=_utf8(span.name),
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        status=Status(code=Status.STATUS_CODE_ERROR if span.error else Status.STATUS_CODE_UNSET),
    )
    out.attributes.extend(_attributes(span.attributes))
    return out


def encode_spans(spans: Sequence[GatewaySpan], service_name: str, scope_version: str = "") -> bytes:
    """One ``ExportTraceServiceRequest`` body; raises :class:`UnencodableAttribute`."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(_attributes({"service.name": service_name}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    scope_spans.scope.version = scope_version
    scope_spans.spans.extend(_span(span) for span in spans)
    return request.SerializeToString()
