"""OTLP encoding round-trips through the official protobuf messages."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

from edge_plugins.trace.otlp import SCOPE_NAME, UnencodableAttribute, encode_spans
from edge_plugins.trace.span import GatewaySpan

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _span(**overrides: object) -> GatewaySpan:
    fields: dict[str, object] = dict(
        trace_id=TRACE_ID,
        span_id="b7ad6b7169203331",
        parent_span_id="00f067aa0ba902b7",
        name="GET /api",
        start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_000_017_000_000,
        trace_flags=0x03,
        trace_state="rojo=1",
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "kong.sampled": True,
            "ratio": 0.5,
            "http.request.header.x-request-id": ["abc-12345"],
        },
    )
    fields.update(overrides)
    return GatewaySpan(**fields)  # type: ignore[arg-type]


def _decode(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def test_round_trip() -> None:
    request = _decode(
        encode_spans(
            [_span(), _span(span_id="1" * 16, error=True, parent_span_id=None)],
            "kong-edge",
            "0.1.0",
        )
    )
    (resource_spans,) = request.resource_spans
    assert {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes} == {
        "service.name": "kong-edge"
    }
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == (SCOPE_NAME, "0.1.0")
    first, second = scope_spans.spans
    assert first.trace_id.hex() == TRACE_ID and first.span_id.hex() == "b7ad6b7169203331"
    assert first.parent_span_id.hex() == "00f067aa0ba902b7"
    assert first.kind == Span.SPAN_KIND_SERVER and first.name == "GET /api"
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (
        1_700_000_000_000_000_000,
        1_700_000_000_017_000_000,
    )
    assert first.trace_state == "rojo=1"
    assert first.status.code == Status.STATUS_CODE_UNSET
    assert first.flags == (
        0x03
        | SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
        | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    )
    attributes = {kv.key: kv.value for kv in first.attributes}
    assert attributes["http.request.method"].string_value == "GET"
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["kong.sampled"].bool_value is True
    assert attributes["ratio"].double_value == 0.5
    assert [
        v.string_value for v in attributes["http.request.header.x-request-id"].array_value.values
    ] == ["abc-12345"]
    assert second.status.code == Status.STATUS_CODE_ERROR
    assert second.parent_span_id == b""
    assert second.flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK == 0
    assert second.flags & SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK


def test_unencodable_attribute() -> None:
    with pytest.raises(UnencodableAttribute):
        encode_spans([_span(attributes={"bad": {"a": 1}})], "kong-edge")
