"""``edge_plugin_certificate_expiry_timestamp_seconds``: the certificates a plugin server
loaded (edge-jwt's ``public_keys_pem``), served by the plugin server's metrics endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_plugins import certificates, metrics_server
from edge_plugins.jwt.keys import key_from_pem
from tests.support.certificates import at, self_signed_pem
from tests.support.harness import free_port


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    certificates.forget_all()
    yield
    certificates.forget_all()


def _samples() -> dict[tuple[str, str], float]:
    (family,) = certificates.CertificateExpiryCollector().collect()
    assert family.type == "gauge"
    return {(s.labels["source"], s.labels["subject"]): s.value for s in family.samples}


def test_a_certificate_edge_jwt_loads_is_recorded_a_bare_key_is_not() -> None:
    assert _samples() == {}
    key_from_pem(self_signed_pem("issuer-a", at(30)).decode())
    key_from_pem(self_signed_pem("issuer-b", at(365)).decode())
    assert _samples() == {
        ("edge-jwt public_keys_pem", "CN=issuer-a"): at(30).timestamp(),
        ("edge-jwt public_keys_pem", "CN=issuer-b"): at(365).timestamp(),
    }


def test_a_renewed_certificate_replaces_the_date() -> None:
    key_from_pem(self_signed_pem("issuer-a", at(3)).decode())
    key_from_pem(self_signed_pem("issuer-a", at(90)).decode())
    assert _samples() == {("edge-jwt public_keys_pem", "CN=issuer-a"): at(90).timestamp()}


def test_the_metrics_endpoint_serves_the_gauge() -> None:
    key_from_pem(self_signed_pem("issuer-a", at(30)).decode())
    metrics_server.start_metrics_server(free_port())
    port = metrics_server._server_port  # the first start in this process wins
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text
    samples = {
        (s.labels["source"], s.labels["subject"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "edge_plugin_certificate_expiry_timestamp_seconds"
        for s in family.samples
    }
    assert samples == {("edge-jwt public_keys_pem", "CN=issuer-a"): at(30).timestamp()}
