"""TraceConfig.from_kong: what Kong's schema cannot check is refused at StartInstance."""

from __future__ import annotations

import pytest

from edge_plugins.edge_trace import Schema
from edge_plugins.trace.config import InvalidTraceConfig, TraceConfig


def _defaults() -> dict[str, object]:
    """The config Kong sends when nothing is set: every schema default filled in."""
    out: dict[str, object] = {}
    for entry in Schema:
        ((name, field),) = entry.items()
        if "default" in field:
            out[name] = field["default"]
    return out


def test_schema_defaults_are_a_valid_config() -> None:
    config = TraceConfig.from_kong(_defaults())
    assert config.trust_incoming_context and not config.accept_b3
    assert config.sampler.ratio == 1.0
    assert config.request_id.header == "X-Request-ID"
    assert not config.request_id.needs_client_ip
    assert config.export is None  # no endpoint, no export
    assert not config.response_trace_context


def test_absent_and_null_fields_take_the_defaults() -> None:
    assert TraceConfig.from_kong({}) == TraceConfig.from_kong(
        {"sample_ratio": None, "request_id_header": None, "otlp_endpoint": None}
    )


def test_export_settings() -> None:
    config = TraceConfig.from_kong(
        {
            "otlp_endpoint": "http://collector:4318/v1/traces",
            "otlp_timeout_ms": 500,
            "service_name": "edge-eu",
        }
    )
    assert config.export is not None
    assert config.export.endpoint == "http://collector:4318/v1/traces"
    assert config.export.timeout_seconds == 0.5
    assert config.export.service_name == "edge-eu"
    assert (config.export.queue_size, config.export.batch_size) == (2048, 512)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"request_id_pattern": "(unclosed"}, "request_id_pattern"),
        ({"request_id_trusted_ips": ["10.0.0.0/8", "not-a-cidr"]}, "request_id_trusted_ips"),
        ({"request_id_header": "X Request"}, "request_id_header"),
        ({"request_id_header": "traceparent"}, "trace header"),
        ({"request_id_header": "X-B3-TraceId"}, "trace header"),
        ({"request_id_format": "ulid"}, "request_id_format"),
        ({"sample_ratio": 2}, "sample_ratio"),
        ({"otlp_endpoint": "collector:4318"}, "otlp_endpoint"),
        ({"otlp_endpoint": "ftp://collector/v1/traces"}, "otlp_endpoint"),
        (
            {"otlp_endpoint": "http://c/v1/traces", "otlp_batch_size": 10, "otlp_queue_size": 5},
            "otlp_batch_size",
        ),
        ({"otlp_endpoint": "http://c/v1/traces", "otlp_timeout_ms": 0}, "otlp_timeout_ms"),
        ({"response_trace_format": "header"}, "response_trace_format"),
    ],
)
def test_rejected(conf: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTraceConfig, match=message):
        TraceConfig.from_kong(conf)


def test_trusted_ips_accept_addresses_and_blocks() -> None:
    config = TraceConfig.from_kong({"request_id_trusted_ips": ["10.0.0.1", "fd00::/8"]})
    assert config.request_id.needs_client_ip
    assert config.request_id.trusts("10.0.0.1") and not config.request_id.trusts("10.0.0.2")
