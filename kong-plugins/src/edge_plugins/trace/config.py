"""The edge-trace configuration, validated once per plugin instance (``StartInstance``).

Kong's schema checks types, ranges and enumerations (``edge_trace.Schema``, built from
:mod:`edge_plugins.trace.schema`); what it cannot check is refused here, so a bad value is
found when the config is loaded, not on a request:

* ``request_id_pattern`` must compile as a Python regular expression, and
  ``request_id_trusted_ips`` must be IP addresses or CIDR blocks;
* ``request_id_header`` must be an HTTP field name (RFC 9110 token) and must not be one of
  the trace headers this plugin writes itself;
* ``otlp_endpoint`` must be an absolute ``http(s)`` URL with a host (the full traces path,
  like ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: ``http://collector:4318/v1/traces``);
* ``otlp_batch_size`` may not exceed ``otlp_queue_size``.

Unset optional fields arrive absent or null, so every field is read with ``.get`` and its
default from the same table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edge_plugins.kong_schema import Field
from edge_plugins.trace.b3 import ALL_HEADERS as B3_HEADERS
from edge_plugins.trace.request_id import Network, RequestIdPolicy
from edge_plugins.trace.sampling import InvalidSampleRatio, RatioSampler
from edge_plugins.trace.schema import FIELDS

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset(
    {"traceparent", "tracestate", "traceresponse", "server-timing", *B3_HEADERS}
)


class InvalidTraceConfig(ValueError):
    """The plugin config cannot be used (the message names the field)."""


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """Where and how spans are exported; equal settings share one exporter per process."""

    endpoint: str
    service_name: str
    timeout_seconds: float
    queue_size: int
    batch_size: int
    flush_interval_seconds: float


@dataclass(frozen=True, slots=True)
class TraceConfig:
    trust_incoming_context: bool
    accept_b3: bool
    sampler: RatioSampler
    request_id: RequestIdPolicy
    response_trace_context: bool
    response_trace_format: str
    export: ExportSettings | None  # None: spans are not exported

    @classmethod
    def from_kong(cls, conf: Mapping[str, Any]) -> TraceConfig:
        """Build from Kong's config dict; raise :class:`InvalidTraceConfig` (module doc)."""
        try:
            sampler = RatioSampler.of(_get(conf, FIELDS["sample_ratio"]))
        except InvalidSampleRatio as exc:
            raise InvalidTraceConfig(str(exc)) from exc
        return cls(
            trust_incoming_context=bool(_get(conf, FIELDS["trust_incoming_context"])),
            accept_b3=bool(_get(conf, FIELDS["accept_b3"])),
            sampler=sampler,
            request_id=_request_id_policy(conf),
            response_trace_context=bool(_get(conf, FIELDS["response_trace_context"])),
            response_trace_format=_choice(conf, FIELDS["response_trace_format"]),
            export=_export_settings(conf),
        )


def _get(conf: Mapping[str, Any], field: Field) -> Any:
    value = conf.get(field.name)
    return field.default if value is None else value


def _choice(conf: Mapping[str, Any], field: Field) -> str:
    value = _get(conf, field)
    if value not in field.choices:
        raise InvalidTraceConfig(f"{field.name} must be one of {field.choices}")
    return str(value)


def _request_id_policy(conf: Mapping[str, Any]) -> RequestIdPolicy:
    header = _get(conf, FIELDS["request_id_header"])
    if not isinstance(header, str) or not _TOKEN.fullmatch(header):
        raise InvalidTraceConfig(f"request_id_header is not an HTTP header name: {header!r}")
    if header.lower() in _RESERVED_HEADERS:
        raise InvalidTraceConfig(f"request_id_header may not be the trace header {header!r}")
    source = _get(conf, FIELDS["request_id_pattern"])
    try:
        pattern = re.compile(source)
    except (re.error, TypeError) as exc:
        raise InvalidTraceConfig(f"request_id_pattern does not compile: {exc}") from exc
    networks: list[Network] = []
    for cidr in _get(conf, FIELDS["request_id_trusted_ips"]):
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as exc:
            raise InvalidTraceConfig(f"request_id_trusted_ips: {exc}") from exc
    id_format = _choice(conf, FIELDS["request_id_format"])
    return RequestIdPolicy(
        header=header, pattern=pattern, trusted_networks=tuple(networks), id_format=id_format
    )


def _positive_int(conf: Mapping[str, Any], field: Field) -> int:
    value = _get(conf, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidTraceConfig(f"{field.name} must be a positive integer, got {value!r}")
    return value


def _export_settings(conf: Mapping[str, Any]) -> ExportSettings | None:
    endpoint = conf.get("otlp_endpoint")
    if endpoint is None or endpoint == "":
        return None
    parts = urlsplit(str(endpoint))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidTraceConfig(f"otlp_endpoint must be an http(s) URL, got {endpoint!r}")
    queue_size = _positive_int(conf, FIELDS["otlp_queue_size"])
    batch_size = _positive_int(conf, FIELDS["otlp_batch_size"])
    if batch_size > queue_size:
        raise InvalidTraceConfig("otlp_batch_size may not exceed otlp_queue_size")
    service_name = _get(conf, FIELDS["service_name"])
    if not isinstance(service_name, str) or not service_name:
        raise InvalidTraceConfig("service_name must be a non-empty string")
    return ExportSettings(
        endpoint=str(endpoint),
        service_name=service_name,
        timeout_seconds=_positive_int(conf, FIELDS["otlp_timeout_ms"]) / 1000,
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval_seconds=_positive_int(conf, FIELDS["otlp_flush_interval_ms"]) / 1000,
    )
