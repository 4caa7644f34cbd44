"""Development certificates for TLS on the gateway → backend hop (docs: backend/docs/tls.md).

    scripts/dev-certs [--out DIR] [--san NAME]... [--days N]

(``scripts/dev-certs`` runs this file with the venv's python, which has ``cryptography``;
relative paths are relative to the repository root.)

Writes into DIR (default ``var/certs``, git-ignored with the rest of ``var/``):

    ca.pem, ca-key.pem              a development CA (EC P-256): signs the backend's server
                                    certificate and Kong's client certificate; the public
                                    listener trusts it for clients
    monitoring-ca.pem, monitoring-ca-key.pem
                                    the CA of the metrics listener's clients (Prometheus)
    internal-ca.pem, internal-ca-key.pem
                                    the CA of the internal listener's clients (/internal/)
    backend.pem, backend-key.pem    the backend's server certificate (serverAuth), SANs:
                                    localhost, 127.0.0.1, ::1, backend, auth-backend and each
                                    --san (e.g. auth-backend.<namespace>.svc.cluster.local)
    gateway.pem, gateway-key.pem    Kong's client certificate (clientAuth, under ca.pem), CN
                                    and DNS SAN kong-edge
    prometheus.pem, prometheus-key.pem
                                    Prometheus's client certificate (clientAuth, under
                                    monitoring-ca.pem), CN and DNS SAN prometheus
    internal-client.pem, internal-client-key.pem
                                    a client certificate for the internal API (clientAuth,
                                    under internal-ca.pem), CN and DNS SAN internal-client

One client CA per backend listener (backend/docs/tls.md, ``GUNICORN_INTERNAL_CA_CERTS``,
``GUNICORN_METRICS_CA_CERTS``): Kong's certificate opens the public listener only, so the
gateway can reach neither the internal API nor the metrics, whatever network it shares
with them.

Private keys are mode 0600, the directory 0700. Idempotent: a file is kept while it is valid
(parses, matches its key, is signed by the CA, has the wanted SANs, and has more than 30 days
left); anything else is made again, and a new CA makes every leaf again. Prints one line per
file (``kept`` / ``made``) on stderr and the directory on stdout.

How they are used (``make run`` stays plain HTTP on loopback and needs none of this):

* backend (gunicorn, backend/gunicorn.conf.py): ``GUNICORN_CERTFILE=…/backend.pem``,
  ``GUNICORN_KEYFILE=…/backend-key.pem``, ``GUNICORN_CA_CERTS=…/ca.pem``,
  ``GUNICORN_CERT_REQS=required``.
* Kong: the service ``url: https://backend:8080`` with ``client_certificate`` naming a
  ``certificates`` entity whose ``cert``/``key`` are gateway.pem/gateway-key.pem (inline, or
  ``{vault://env/…}`` references, which Kong allows for those two fields), and to verify the
  backend ``tls_verify: true`` with ``ca_certificates`` naming a ``ca_certificates`` entity
  holding ca.pem (inline only: that field is not referenceable), or kong.conf's
  ``nginx_proxy_proxy_ssl_verify = on`` + ``nginx_proxy_proxy_ssl_trusted_certificate``.

``make up`` runs it before ``docker compose up`` and the compose file mounts the files
read-only (Kong reads its key through the owner's group: ``make up`` makes the two keys Kong
reads 0640); on Kubernetes they become Secrets (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_OUT = Path("var/certs")
BACKEND_NAMES = ("localhost", "127.0.0.1", "::1", "backend", "auth-backend")
GATEWAY_CN = "kong-edge"
PROMETHEUS_CN = "prometheus"
INTERNAL_CLIENT_CN = "internal-client"
# stem -> common name of each CA
CAS = {
    "ca": "api-edge development CA",
    "monitoring-ca": "api-edge development monitoring clients CA",
    "internal-ca": "api-edge development internal clients CA",
}
RENEW_BEFORE = datetime.timedelta(days=30)
CA_DAYS = 3650


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _save(out: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    # the key first: a certificate on disk always has its key next to it
    _write(
        out / f"{stem}-key.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(out / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM), private=False)


def _load(out: Path, stem: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((out / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key((out / f"{stem}-key.pem").read_bytes(), None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != key.public_key().public_bytes(serialization.Encoding.DER, public):
        return None
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return None
    return cert, key


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _sans(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


# x509.KeyUsage takes every flag by name (RFC 5280 §4.2.1.3).
_KEY_USAGE_FLAGS = (
    "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
    "key_cert_sign crl_sign encipher_only decipher_only"
).split()


def _key_usage(*granted: str) -> x509.KeyUsage:
    """A KeyUsage with the ``granted`` flags set and every other one of its flags clear."""
    unknown = set(granted) - set(_KEY_USAGE_FLAGS)
    if unknown:
        raise ValueError(f"not KeyUsage flags: {sorted(unknown)}")
    return x509.KeyUsage(**{flag: flag in granted for flag in _KEY_USAGE_FLAGS})


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(common_name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: str,
    usage: x509.ObjectIdentifier,
    names: list[str],
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca.subject, key.public_key(), days)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_dev_certs(out: Path, extra_sans: list[str], days: int) -> dict[str, str]:
    """Make or keep the CAs and certificates in ``out``; returns ``{stem: "kept"|"made"}``."""
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    report: dict[str, str] = {}
    cas = {}
    for ca_stem, common_name in CAS.items():
        loaded = _load(out, ca_stem)
        if loaded is None:
            loaded = _make_ca(common_name)
            _save(out, ca_stem, *loaded)
            report[ca_stem] = "made"
        else:
            report[ca_stem] = "kept"
        cas[ca_stem] = loaded
    backend_names = list(dict.fromkeys([*BACKEND_NAMES, *extra_sans]))
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    leaves = (
        ("backend", "auth-backend", ExtendedKeyUsageOID.SERVER_AUTH, backend_names, "ca"),
        ("gateway", GATEWAY_CN, client, [GATEWAY_CN], "ca"),
        ("prometheus", PROMETHEUS_CN, client, [PROMETHEUS_CN], "monitoring-ca"),
        ("internal-client", INTERNAL_CLIENT_CN, client, [INTERNAL_CLIENT_CN], "internal-ca"),
    )
    for stem, subject, usage, names, ca_stem in leaves:
        ca = cas[ca_stem]
        leaf = _load(out, stem)
        wanted = {_general_name(n) for n in names}
        if (
            leaf is not None
            and report[ca_stem] == "kept"
            and _signed_by(leaf[0], ca[0])
            and wanted <= _sans(leaf[0])
        ):
            report[stem] = "kept"
            continue
        _save(out, stem, *_make_leaf(*ca, subject, usage, names, days))
        report[stem] = "made"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dev-certs", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="directory for the files (default: var/certs)"
    )
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP of the backend (repeatable)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=365,
        help="validity of the server and client certificates (default 365)",
    )
    args = parser.parse_args(argv)
    report = make_dev_certs(args.out, args.san, args.days)
    for stem, what in report.items():
        print(f"dev-certs: {what} {args.out / stem}.pem", file=sys.stderr)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
