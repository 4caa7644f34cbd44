"""Self-signed certificates with a chosen expiry, for the tests of the certificate-expiry
gauges (the backend's and the plugin servers')."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_pem(common_name: str, not_after: datetime.datetime) -> bytes:
    """A PEM certificate for ``CN=common_name`` valid until ``not_after`` (whole seconds)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def at(days: int) -> datetime.datetime:
    """Midnight UTC ``days`` from a fixed date (certificates round notAfter to seconds)."""
    return datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=days)
