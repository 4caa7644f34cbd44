"""The edge-trace configuration, validated once per plugin instance (``StartInstance``).

Kong's schema checks types, ranges and enumerations (``edge_trace.Schema``); what it cannot
check is refused here, so a bad value is found when the config is loaded, not on a request:

* ``request_id_pattern`` must compile as a Python regular expression, and
  ``request_id_trusted_ips`` must be IP addresses or CIDR blocks;
* ``request_id_header`` must be an HTTP field name (RFC 9110 token) and must not be one of
  the trace headers this plugin writes itself;
* ``otlp_endpoint`` must be an absolute ``http(s)`` URL with a host (the full traces path,
  like ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: ``http://collector:4318/v1/traces``);
* ``otlp_batch_size`` may not exceed ``otlp_queue_size``.

Unset optional fields arrive absent or null, so every field is read with ``.get`` and its
documented default.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edge_plugins.trace.b3 import ALL_HEADERS as B3_HEADERS
from edge_plugins.trace.request_id import (
    DEFAULT_HEADER,
    DEFAULT_PATTERN,
    FORMATS,
    Network,
    RequestIdPolicy,
)
from edge_plugins.trace.sampling import InvalidSampleRatio, RatioSampler

DEFAULT_SERVICE_NAME = "kong-edge"
DEFAULT_TIMEOUT_MS = 2000
DEFAULT_QUEUE_SIZE = 2048
DEFAULT_BATCH_SIZE = 512
DEFAULT_FLUSH_INTERVAL_MS = 1000
RESPONSE_FORMATS = ("traceresponse", "server-timing")
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
            sampler = RatioSampler.of(_get(conf, "sample_ratio", 1.0))
        except InvalidSampleRatio as exc:
            raise InvalidTraceConfig(str(exc)) from exc
        response_format = _get(conf, "response_trace_format", "traceresponse")
        if response_format not in RESPONSE_FORMATS:
            raise InvalidTraceConfig(f"response_trace_format must be one of {RESPONSE_FORMATS}")
        return cls(
            trust_incoming_context=bool(_get(conf, "trust_incoming_context", True)),
            accept_b3=bool(_get(conf, "accept_b3", False)),
            sampler=sampler,
            request_id=_request_id_policy(conf),
            response_trace_context=bool(_get(conf, "response_trace_context", False)),
            response_trace_format=response_format,
            export=_export_settings(conf),
        )


def _get(conf: Mapping[str, Any], key: str, default: Any) -> Any:
    value = conf.get(key)
    return default if value is None else value


def _request_id_policy(conf: Mapping[str, Any]) -> RequestIdPolicy:
    header = _get(conf, "request_id_header", DEFAULT_HEADER)
    if not isinstance(header, str) or not _TOKEN.fullmatch(header):
        raise InvalidTraceConfig(f"request_id_header is not an HTTP header name: {header!r}")
    if header.lower() in _RESERVED_HEADERS:
        raise InvalidTraceConfig(f"request_id_header may not be the trace header {header!r}")
    source = _get(conf, "request_id_pattern", DEFAULT_PATTERN)
    try:
        pattern = re.compile(source)
    except (re.error, TypeError) as exc:
        raise InvalidTraceConfig(f"request_id_pattern does not compile: {exc}") from exc
    networks: list[Network] = []
    for cidr in _get(conf, "request_id_trusted_ips", ()):
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as exc:
            raise InvalidTraceConfig(f"request_id_trusted_ips: {exc}") from exc
    id_format = _get(conf, "request_id_format", "uuid4")
    if id_format not in FORMATS:
        raise InvalidTraceConfig(f"request_id_format must be one of {FORMATS}")
    return RequestIdPolicy(
        header=header, pattern=pattern, trusted_networks=tuple(networks), id_format=id_format
    )


def _positive_int(conf: Mapping[str, Any], key: str, default: int) -> int:
    value = _get(conf, key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidTraceConfig(f"{key} must be a positive integer, got {value!r}")
    return value


def _export_settings(conf: Mapping[str, Any]) -> ExportSettings | None:
    endpoint = conf.get("otlp_endpoint")
    if endpoint is None or endpoint == "":
        return None
    parts = urlsplit(str(endpoint))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidTraceConfig(f"otlp_endpoint must be an http(s) URL, got {endpoint!r}")
    queue_size = _positive_int(conf, "otlp_queue_size", DEFAULT_QUEUE_SIZE)
    batch_size = _positive_int(conf, "otlp_batch_size", DEFAULT_BATCH_SIZE)
    if batch_size > queue_size:
        raise InvalidTraceConfig("otlp_batch_size may not exceed otlp_queue_size")
    service_name = _get(conf, "service_name", DEFAULT_SERVICE_NAME)
    if not isinstance(service_name, str) or not service_name:
        raise InvalidTraceConfig("service_name must be a non-empty string")
    return ExportSettings(
        endpoint=str(endpoint),
        service_name=service_name,
        timeout_seconds=_positive_int(conf, "otlp_timeout_ms", DEFAULT_TIMEOUT_MS) / 1000,
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval_seconds=_positive_int(
            conf, "otlp_flush_interval_ms", DEFAULT_FLUSH_INTERVAL_MS
        )
        / 1000,
    )
