"""scripts/dev-certs: the development CA, the backend's server certificate and the gateway's
client certificate for TLS on the gateway → backend hop (backend/docs/tls.md)."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

REPO = Path(__file__).resolve().parents[2]
FILES = (
    "ca.pem",
    "ca-key.pem",
    "backend.pem",
    "backend-key.pem",
    "gateway.pem",
    "gateway-key.pem",
    "prometheus.pem",
    "prometheus-key.pem",
    "monitoring-ca.pem",
    "monitoring-ca-key.pem",
    "internal-ca.pem",
    "internal-ca-key.pem",
    "internal-client.pem",
    "internal-client-key.pem",
)
# The order the script reports them in: the CAs, then the leaves.
STEMS = [
    "ca",
    "monitoring-ca",
    "internal-ca",
    "backend",
    "gateway",
    "prometheus",
    "internal-client",
]


def outcomes(lines: list[str]) -> dict[str, str]:
    """{stem: made|kept} from the script's stderr lines."""
    return {Path(line.split()[2]).name.removesuffix(".pem"): line.split()[1] for line in lines}


def dev_certs(out: Path, *args: str) -> list[str]:
    """Run the script as `make up` will; returns its stderr lines (one per certificate)."""
    done = subprocess.run(
        [str(REPO / "scripts/dev-certs"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == str(out)
    return done.stderr.splitlines()


def cert(out: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((out / name).read_bytes())


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "var-certs"
    lines = dev_certs(directory, "--san", "auth-backend.edge.svc.cluster.local")
    assert outcomes(lines) == dict.fromkeys(STEMS, "made")
    assert list(outcomes(lines)) == STEMS
    return directory


def test_the_chain_verifies_for_server_and_client(out: Path) -> None:
    """The backend certificate is a valid server certificate for each of its names and the
    gateway's a valid client certificate, both under the CA (RFC 5280 path validation with
    cryptography's verifier: EKU, basic constraints, key usage)."""
    store = Store([cert(out, "ca.pem")])
    for name in ("backend", "auth-backend", "localhost", "auth-backend.edge.svc.cluster.local"):
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
        verifier.verify(cert(out, "backend.pem"), [])
    PolicyBuilder().store(store).build_server_verifier(
        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    ).verify(cert(out, "backend.pem"), [])
    client = (
        PolicyBuilder().store(store).build_client_verifier().verify(cert(out, "gateway.pem"), [])
    )
    assert client.chain[-1] == cert(out, "ca.pem")
    assert (
        client.chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        == "kong-edge"
    )
    with pytest.raises(x509.verification.VerificationError):  # a server cert is no client's
        PolicyBuilder().store(store).build_client_verifier().verify(cert(out, "backend.pem"), [])


def test_sans_name_the_backend_everywhere_it_runs(out: Path) -> None:
    sans = (
        cert(out, "backend.pem")
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert {"localhost", "backend", "auth-backend", "auth-backend.edge.svc.cluster.local"} <= set(
        sans.get_values_for_type(x509.DNSName)
    )
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= set(
        sans.get_values_for_type(x509.IPAddress)
    )


def test_private_keys_are_private(out: Path) -> None:
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in FILES:
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == (0o600 if name.endswith("-key.pem") else 0o644), name


def test_idempotent_and_repairs_only_what_is_missing(out: Path) -> None:
    """A second run keeps every file byte for byte; a missing leaf is made again alone; a new
    SAN remakes the server certificate; a new CA remakes every leaf."""
    before = {name: (out / name).read_bytes() for name in FILES}
    lines = dev_certs(out, "--san", "auth-backend.edge.svc.cluster.local")
    assert outcomes(lines) == dict.fromkeys(STEMS, "kept")
    assert {name: (out / name).read_bytes() for name in FILES} == before

    (out / "gateway.pem").unlink()
    assert outcomes(dev_certs(out)) == {**dict.fromkeys(STEMS, "kept"), "gateway": "made"}
    assert (out / "ca.pem").read_bytes() == before["ca.pem"]

    assert outcomes(dev_certs(out, "--san", "api.internal")) == {
        **dict.fromkeys(STEMS, "kept"),
        "backend": "made",
    }

    # a new CA remakes the leaves it signs, and only those
    (out / "monitoring-ca-key.pem").unlink()
    assert outcomes(dev_certs(out)) == {
        **dict.fromkeys(STEMS, "kept"),
        "monitoring-ca": "made",
        "prometheus": "made",
    }
    (out / "ca-key.pem").unlink()
    assert outcomes(dev_certs(out)) == {
        **dict.fromkeys(STEMS, "kept"),
        "ca": "made",
        "backend": "made",
        "gateway": "made",
    }
    store = Store([cert(out, "ca.pem")])
    PolicyBuilder().store(store).build_client_verifier().verify(cert(out, "gateway.pem"), [])


def test_each_listener_has_its_own_client_ca(out: Path) -> None:
    """Kong's certificate chains to the public listener's CA only; Prometheus's to the
    metrics listener's, the internal client's to the internal listener's (one client CA per
    backend listener: the gateway cannot open the internal API or the metrics)."""
    clients = {"ca.pem": "gateway.pem", "monitoring-ca.pem": "prometheus.pem"}
    clients["internal-ca.pem"] = "internal-client.pem"
    for ca_name in clients:
        store = Store([cert(out, ca_name)])
        for client_name in clients.values():
            verifier = PolicyBuilder().store(store).build_client_verifier()
            if client_name == clients[ca_name]:
                verifier.verify(cert(out, client_name), [])
            else:
                with pytest.raises(x509.verification.VerificationError):
                    verifier.verify(cert(out, client_name), [])
