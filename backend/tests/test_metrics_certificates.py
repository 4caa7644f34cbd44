"""``auth_certificate_expiry_timestamp_seconds``: the notAfter of every certificate in the
TLS files gunicorn loads, read at scrape time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from auth_backend.core.metrics import CertificateExpiryCollector, scrape_time_collectors
from tests.support.certificates import at, self_signed_pem


def _samples(collector: CertificateExpiryCollector) -> dict[tuple[str, str], float]:
    (family,) = collector.collect()
    assert family.name == "auth_certificate_expiry_timestamp_seconds"
    assert family.type == "gauge"
    return {(s.labels["certificate"], s.labels["subject"]): s.value for s in family.samples}


def test_every_certificate_of_each_file_by_role(tmp_path: Path) -> None:
    chain = tmp_path / "server.pem"
    chain.write_bytes(self_signed_pem("backend", at(30)) + self_signed_pem("intermediate", at(400)))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(self_signed_pem("dev-ca", at(3650)))
    collector = CertificateExpiryCollector({"server": str(chain), "client_ca": str(ca)})
    assert _samples(collector) == {
        ("server", "CN=backend"): at(30).timestamp(),
        ("server", "CN=intermediate"): at(400).timestamp(),
        ("client_ca", "CN=dev-ca"): at(3650).timestamp(),
    }


def test_a_renewed_file_shows_at_the_next_scrape(tmp_path: Path) -> None:
    cert = tmp_path / "server.pem"
    cert.write_bytes(self_signed_pem("backend", at(1)))
    collector = CertificateExpiryCollector({"server": str(cert)})
    assert _samples(collector) == {("server", "CN=backend"): at(1).timestamp()}
    cert.write_bytes(self_signed_pem("backend", at(90)))
    assert _samples(collector) == {("server", "CN=backend"): at(90).timestamp()}


def test_an_unreadable_file_is_logged_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "ca.pem"
    good.write_bytes(self_signed_pem("dev-ca", at(10)))
    broken = tmp_path / "broken.pem"
    broken.write_bytes(
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    )
    collector = CertificateExpiryCollector(
        {"server": str(tmp_path / "missing.pem"), "client_ca": str(good), "other": str(broken)}
    )
    with caplog.at_level(logging.ERROR, logger="auth_backend.core.metrics"):
        assert _samples(collector) == {("client_ca", "CN=dev-ca"): at(10).timestamp()}
    assert [r.__dict__["certificate"] for r in caplog.records] == ["server", "other"]


def test_the_metrics_view_reads_gunicorns_tls_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = tmp_path / "server.pem"
    cert.write_bytes(self_signed_pem("backend", at(5)))
    monkeypatch.setenv("GUNICORN_CERTFILE", str(cert))
    monkeypatch.delenv("GUNICORN_CA_CERTS", raising=False)
    (collector,) = [
        c for c in scrape_time_collectors() if isinstance(c, CertificateExpiryCollector)
    ]
    assert _samples(collector) == {("server", "CN=backend"): at(5).timestamp()}
    monkeypatch.delenv("GUNICORN_CERTFILE")
    (collector,) = [
        c for c in scrape_time_collectors() if isinstance(c, CertificateExpiryCollector)
    ]
    assert _samples(collector) == {}
