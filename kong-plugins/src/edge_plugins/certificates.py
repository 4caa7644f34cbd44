"""``edge_plugin_certificate_expiry_timestamp_seconds``: when the certificates a plugin
server loaded expire.

A plugin that loads an X.509 certificate from its configuration (edge-jwt's
``public_keys_pem`` may hold certificates, whose public key then verifies tokens) records it
here with :func:`record_certificate`; the metrics endpoint (``metrics_server``) serves one
sample per certificate, labelled by what loaded it (``source``) and its subject, valued at
its notAfter in Unix seconds. An expired certificate's key keeps verifying tokens (JWT
validation does not look at certificate validity), which is exactly why the date must be
watched: alerts in observability/prometheus/rules/edge.yml, docs/runbooks.md.

Recording never raises (``safely``): a metric must not fail the configuration that loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge_plugins.metrics_server import safely

# Certificates ever loaded by this process: (source, subject) -> notAfter. Bounded by the
# configuration (a handful of PEM entries), so never pruned; a later load of the same
# subject from the same source replaces the date (a renewed certificate).
_loaded: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def record_certificate(source: str, certificate: x509.Certificate) -> None:
    """Remember ``certificate``'s expiry under ``source`` (e.g. ``edge-jwt public_keys_pem``)."""

    def record() -> None:
        key = (source, certificate.subject.rfc4514_string())
        with _lock:
            _loaded[key] = certificate.not_valid_after_utc.timestamp()

    safely(record, "edge_plugin_certificate_expiry_timestamp_seconds")


def forget_all() -> None:
    """Drop every recorded certificate (tests)."""
    with _lock:
        _loaded.clear()


class CertificateExpiryCollector(Collector):
    """The recorded certificates as one gauge family, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "edge_plugin_certificate_expiry_timestamp_seconds",
            "When each certificate this plugin server loaded expires (notAfter, Unix seconds), "
            "by what loaded it and its subject",
            labels=["source", "subject"],
        )
        with _lock:
            loaded = sorted(_loaded.items())
        for (source, subject), not_after in loaded:
            family.add_metric([source, subject], not_after)
        yield family
