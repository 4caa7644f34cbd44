"""TLS on the gateway → service hop, as Kong 3.9.3 sets it up (kong_harness.upstream_tls).

Sources in Kong's repository: ``kong/runloop/upstream_ssl.lua`` (``set_service_ssl``),
``kong/runloop/certificate.lua`` (``fetch_ca_certificates``), ``kong/templates/nginx_kong.lua``
(``proxy_ssl_name $upstream_host``, ``proxy_ssl_server_name on``, no ``proxy_ssl_verify``),
``kong/db/schema/entities/{services,certificates,ca_certificates}.lua``,
``kong/db/schema/others/declarative_config.lua`` (``validate_references``),
``build/openresty/patches/nginx-1.25.3_01-upstream_client_certificate_and_ssl_verify.patch``;
outside it: lua-kong-nginx-module ``src/ssl/ngx_lua_kong_ssl.c`` and nginx's
``ngx_http_proxy_module.c`` (``ngx_http_proxy_set_ssl``).

Certificates are made here with ``cryptography``; upstreams are ``ssl``-wrapped
``http.server``s; the gateway runs in-process (no plugin servers) behind httpx's ASGI
transport. The last test runs the real backend under gunicorn with the TLS settings of
backend/gunicorn.conf.py and the certificates of scripts/dev-certs.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kong_harness.conf import load_kong_conf
from kong_harness.declarative import DeclarativeConfigError, load_declarative
from kong_harness.gateway import Gateway, GatewayConfigError, GatewaySettings
from tests.support.backend import running_backend
from tests.support.harness import REPO

CLIENT_CERT_ID = "0b6d8a52-2f5e-4d1c-9a43-8c1f3e2d7a01"
CA_ID = "1c7e9b63-3a6f-4e2d-8b54-9d2a4f3e8b02"
OTHER_CA_ID = "2d8fac74-4b7a-4f3e-9c65-ae3b5a4f9c03"
BAD_GATEWAY = "An invalid response was received from the upstream server"


# ------------------------------------------------------------------------------------------
# Test certificates
# ------------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)  # intermediates, leaf excluded

    @property
    def cert_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in [self.cert, *self.chain]
        )

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def files(self, directory: Path, stem: str) -> tuple[Path, Path]:
        cert, key = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        return cert, key


def _issue(
    cn: str,
    issuer: Issued | None,
    *,
    ca: bool,
    sans: tuple[str, ...] = (),
    usage: x509.ObjectIdentifier | None = None,
    days: int = 30,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s)
                    for s in sans
                ]
            ),
            critical=False,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


@dataclass
class Pki:
    ca: Issued
    other_ca: Issued
    intermediate: Issued
    server: Issued  # by ca, localhost + 127.0.0.1
    server_via_intermediate: Issued  # by intermediate (chain sent), localhost
    server_other_name: Issued  # by ca, other.test only
    self_signed: Issued  # its own issuer, localhost
    gateway: Issued  # client certificate by ca


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = _issue("test root CA", None, ca=True)
    intermediate = _issue("test intermediate CA", ca, ca=True)
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    via = _issue(
        "upstream via intermediate", intermediate, ca=False, sans=("localhost",), usage=server_auth
    )
    via.chain = [intermediate.cert]  # the server sends its intermediate
    return Pki(
        ca=ca,
        other_ca=_issue("another CA", None, ca=True),
        intermediate=intermediate,
        server=_issue("upstream", ca, ca=False, sans=("localhost", "127.0.0.1"), usage=server_auth),
        server_via_intermediate=via,
        server_other_name=_issue("other", ca, ca=False, sans=("other.test",), usage=server_auth),
        self_signed=_issue("self-signed upstream", None, ca=False, sans=("localhost",)),
        gateway=_issue("kong-edge-test", ca, ca=False, usage=client_auth),
    )


# ------------------------------------------------------------------------------------------
# A TLS upstream and an in-process gateway
# ------------------------------------------------------------------------------------------


@dataclass
class TLSUpstream:
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    snis: list[str | None] = field(default_factory=list)


@contextlib.contextmanager
def tls_upstream(
    server: Issued, directory: Path, client_ca: Issued | None = None
) -> Iterator[TLSUpstream]:
    """An HTTPS echo server; with ``client_ca`` it requires a client certificate from it."""
    directory.mkdir(parents=True, exist_ok=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server.files(directory, "upstream"))
    if client_ca is not None:
        context.load_verify_locations(cadata=client_ca.cert_pem)
        context.verify_mode = ssl.CERT_REQUIRED
    upstream = TLSUpstream(port=0)
    context.sni_callback = lambda _sock, name, _ctx: upstream.snis.append(name)  # type: ignore[assignment]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(rdn[0] for rdn in peer["subject"]) if peer else None
            record = {
                "path": self.path,
                "host": self.headers.get("Host"),
                "client_subject": subject,
            }
            upstream.requests.append(record)
            body = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    upstream.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.asynccontextmanager
async def gateway(
    directory: Path, kong_yml: dict[str, Any], conf: dict[str, str] | None = None
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"prefix = {directory}", *(f"{k} = {v}" for k, v in (conf or {}).items())]
    (directory / "kong.conf").write_text("\n".join(lines) + "\n")
    (directory / "kong.yml").write_text(yaml.safe_dump({"_format_version": "3.0", **kong_yml}))
    gw = Gateway(
        GatewaySettings(
            kong_conf=load_kong_conf(directory / "kong.conf", env={}),
            declarative_config=directory / "kong.yml",
            start_plugin_servers=False,
        )
    )
    await gw.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw), base_url="http://kong.test", timeout=30
        ) as client:
            yield gw, client
    finally:
        await gw.stop()


def service(name: str, port: int, host: str = "localhost", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"https://{host}:{port}",
        **fields,
        "routes": [{"name": f"r-{name}", "paths": [f"/{name}"]}],
    }


def entities(pki: Pki) -> dict[str, Any]:
    return {
        "certificates": [
            {"id": CLIENT_CERT_ID, "cert": pki.gateway.cert_pem, "key": pki.gateway.key_pem}
        ],
        "ca_certificates": [
            {"id": CA_ID, "cert": pki.ca.cert_pem},
            {"id": OTHER_CA_ID, "cert": pki.other_ca.cert_pem},
        ],
    }


# ------------------------------------------------------------------------------------------
# (a) client certificates
# ------------------------------------------------------------------------------------------


async def test_client_certificate_is_presented_to_an_upstream_that_requires_one(
    pki: Pki, tmp_path: Path
) -> None:
    """upstream_ssl.lua ``set_service_ssl``: the service's ``client_certificate`` is the
    connection's (``set_upstream_cert_and_key``); without one nginx presents none (the
    template sets no ``proxy_ssl_certificate`` unless kong.conf's ``client_ssl``) and an
    upstream that requires one fails the handshake: 502. The SNI is the Host sent
    (``proxy_ssl_name $upstream_host`` without the port)."""
    with tls_upstream(pki.server, tmp_path, client_ca=pki.ca) as up:
        yml = {
            **entities(pki),
            "services": [
                service("with-cert", up.port, client_certificate=CLIENT_CERT_ID),
                service("without-cert", up.port),
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (_, client):
            with_cert = await client.get("/with-cert/x")
            without = await client.get("/without-cert/x")
    assert with_cert.status_code == 200, with_cert.text
    assert with_cert.json()["client_subject"] == {"commonName": "kong-edge-test"}
    assert with_cert.json()["host"] == f"localhost:{up.port}"
    assert up.snis[0] == "localhost"
    assert without.status_code == 502
    assert without.json()["message"] == BAD_GATEWAY
    assert len(up.requests) == 1  # the request without a certificate never got through


# ------------------------------------------------------------------------------------------
# (b) verifying the upstream
# ------------------------------------------------------------------------------------------


async def test_tls_verify_against_the_services_ca_certificates(pki: Pki, tmp_path: Path) -> None:
    """``tls_verify: true`` verifies against the service's ``ca_certificates``
    (``set_upstream_ssl_trusted_store``): the right CA → 200, another CA → 502 before any
    request is sent. Unset, nginx's ``proxy_ssl_verify`` (off: Kong's template never sets
    it) decides, so a self-signed upstream is reached, as with ``tls_verify: false``."""
    with (
        tls_upstream(pki.server, tmp_path / "a") as signed,
        tls_upstream(pki.self_signed, tmp_path / "b") as self_signed,
    ):
        yml = {
            **entities(pki),
            "services": [
                service("right-ca", signed.port, tls_verify=True, ca_certificates=[CA_ID]),
                service("wrong-ca", signed.port, tls_verify=True, ca_certificates=[OTHER_CA_ID]),
                service("unset", self_signed.port),
                service("off", self_signed.port, tls_verify=False, ca_certificates=[CA_ID]),
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (_, client):
            right, wrong = await client.get("/right-ca"), await client.get("/wrong-ca")
            unset, off = await client.get("/unset"), await client.get("/off")
    assert right.status_code == 200, right.text
    assert wrong.status_code == 502
    assert wrong.json()["message"] == BAD_GATEWAY
    assert len(signed.requests) == 1
    assert (unset.status_code, off.status_code) == (200, 200)


async def test_tls_verify_without_ca_certificates_trusts_nothing_by_default(
    pki: Pki, tmp_path: Path
) -> None:
    """Without ``ca_certificates`` the store is the proxy SSL context's, which nginx fills
    from ``proxy_ssl_trusted_certificate`` only when ``proxy_ssl_verify`` is on
    (``ngx_http_proxy_set_ssl``); Kong's template sets neither, so ``tls_verify: true``
    alone trusts nothing: 502 (``lua_ssl_trusted_certificate`` is for cosockets)."""
    with tls_upstream(pki.server, tmp_path) as up:
        yml = {**entities(pki), "services": [service("verify", up.port, tls_verify=True)]}
        async with gateway(tmp_path / "gw", yml) as (_, client):
            response = await client.get("/verify")
    assert response.status_code == 502
    assert up.requests == []


async def test_proxy_ssl_verify_from_kong_conf(pki: Pki, tmp_path: Path) -> None:
    """kong.conf's injected ``nginx_proxy_proxy_ssl_verify = on`` with
    ``nginx_proxy_proxy_ssl_trusted_certificate``: services with ``tls_verify`` unset verify
    against that file; ``tls_verify: false`` still turns it off for one service
    (``ngx_lua_kong_ssl_get_upstream_ssl_verify``)."""
    (tmp_path / "trusted.pem").write_text(pki.ca.cert_pem)
    conf = {
        "nginx_proxy_proxy_ssl_verify": "on",
        "nginx_proxy_proxy_ssl_trusted_certificate": str(tmp_path / "trusted.pem"),
    }
    with (
        tls_upstream(pki.server, tmp_path / "a") as signed,
        tls_upstream(pki.self_signed, tmp_path / "b") as self_signed,
    ):
        yml = {
            "services": [
                service("signed", signed.port),
                service("self-signed", self_signed.port),
                service("self-signed-off", self_signed.port, tls_verify=False),
            ]
        }
        async with gateway(tmp_path / "gw", yml, conf) as (_, client):
            assert (await client.get("/signed")).status_code == 200
            assert (await client.get("/self-signed")).status_code == 502
            assert (await client.get("/self-signed-off")).status_code == 200


async def test_proxy_ssl_verify_on_needs_a_trusted_certificate(tmp_path: Path) -> None:
    """nginx ``ngx_http_proxy_set_ssl``: ``proxy_ssl_verify on`` without
    ``proxy_ssl_trusted_certificate`` stops nginx at start."""
    with pytest.raises(
        GatewayConfigError, match="no proxy_ssl_trusted_certificate for proxy_ssl_verify"
    ):
        async with gateway(tmp_path, {"services": []}, {"nginx_proxy_proxy_ssl_verify": "on"}):
            pass


async def test_the_verified_name_and_sni_are_the_upstream_host(pki: Pki, tmp_path: Path) -> None:
    """``proxy_ssl_name $upstream_host``: the certificate must name the Host Kong sends —
    the service host normally (a certificate for other.test fails: 502), the client's Host
    with ``preserve_host`` (then other.test is both the SNI and the verified name: 200)."""
    with tls_upstream(pki.server_other_name, tmp_path) as up:
        preserving = service("preserve", up.port, tls_verify=True, ca_certificates=[CA_ID])
        preserving["routes"][0]["preserve_host"] = True
        yml = {
            **entities(pki),
            "services": [
                service("service-host", up.port, tls_verify=True, ca_certificates=[CA_ID]),
                preserving,
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (gw, client):
            mismatch = await client.get("/service-host")
            preserved = await client.get("/preserve", headers={"Host": "other.test"})
            again = await client.get("/preserve", headers={"Host": "other.test"})
            clients = len(gw.upstream_clients)
    assert mismatch.status_code == 502
    assert (preserved.status_code, again.status_code) == (200, 200), preserved.text
    assert preserved.json()["host"] == "other.test"
    assert up.snis == ["localhost", "other.test", "other.test"]  # one handshake each
    assert clients == 2  # the pooled client of that TLS setting and its per-SNI twin


async def test_tls_verify_depth(pki: Pki, tmp_path: Path) -> None:
    """``tls_verify_depth`` (``set_upstream_ssl_verify_depth``, OpenSSL's depth: the number
    of intermediates allowed): 0 refuses a chain through one intermediate, 1 accepts it;
    unset, OpenSSL's default applies (nginx sets ``proxy_ssl_verify_depth`` only when
    ``proxy_ssl_verify`` is on)."""
    with tls_upstream(pki.server_via_intermediate, tmp_path) as up:
        verify = {"tls_verify": True, "ca_certificates": [CA_ID]}
        yml = {
            **entities(pki),
            "services": [
                service("depth0", up.port, tls_verify_depth=0, **verify),
                service("depth1", up.port, tls_verify_depth=1, **verify),
                service("unset", up.port, **verify),
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (_, client):
            statuses = [
                (await client.get(f"/{name}")).status_code for name in ("depth0", "depth1", "unset")
            ]
    assert statuses == [502, 200, 200]


async def test_a_missing_ca_certificate_leaves_the_default_store(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kong never checks ``ca_certificates`` ids at load; at request time
    ``fetch_ca_certificates`` fails, ``set_service_ssl`` logs it (CRIT) and the default
    (empty) store stays: 502."""
    missing = "3e9abd85-5c8b-4a4f-8d76-bf4c6b5aad04"
    with tls_upstream(pki.server, tmp_path) as up:
        yml = {
            **entities(pki),
            "services": [
                service("dangling", up.port, tls_verify=True, ca_certificates=[CA_ID, missing])
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (_, client):
            with caplog.at_level(logging.CRITICAL, logger="kong_harness.upstream_tls"):
                response = await client.get("/dangling")
    assert response.status_code == 502
    assert (
        f"unable to get upstream TLS CA store, err: CA Certificate '{missing}' does not exist"
    ) in caplog.text


async def test_one_http_client_per_tls_configuration(pki: Pki, tmp_path: Path) -> None:
    """The harness keeps one httpx client (and connection pool) per distinct TLS setting,
    not one per request: two services with the same setting share one."""
    with tls_upstream(pki.server, tmp_path, client_ca=pki.ca) as up:
        same = {
            "client_certificate": CLIENT_CERT_ID,
            "tls_verify": True,
            "ca_certificates": [CA_ID],
        }
        yml = {
            **entities(pki),
            "services": [
                service("one", up.port, **same),
                service("two", up.port, **same),
                service("three", up.port, client_certificate=CLIENT_CERT_ID),
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (gw, client):
            for path in ("/one", "/two", "/one", "/two"):
                assert (await client.get(path)).status_code == 200
            shared = len(gw.upstream_clients)
            assert (await client.get("/three")).status_code == 200
            assert len(gw.upstream_clients) == shared + 1
    assert shared == 1
    assert len(up.snis) <= 2  # kept-alive connections, not one handshake per request


# ------------------------------------------------------------------------------------------
# (c) declarative configuration
# ------------------------------------------------------------------------------------------


def _error(config: dict[str, Any]) -> DeclarativeConfigError:
    with pytest.raises(DeclarativeConfigError) as info:
        load_declarative({"_format_version": "3.0", **config})
    return info.value


def test_a_dangling_client_certificate_is_an_invalid_reference(pki: Pki) -> None:
    """declarative_config.lua ``validate_references``: ``client_certificate`` is a foreign
    key to ``certificates`` (by id: certificates have no endpoint key), reported under the
    service's name like any reference."""
    missing = "4fa0ce96-6d9c-4b50-9e87-c05d7c6bbe05"
    err = _error(
        {
            **entities(pki),
            "services": [
                {"name": "svc", "url": "https://backend:8443", "client_certificate": missing},
                {
                    "name": "svc2",
                    "url": "https://backend:8443",
                    "client_certificate": {"id": missing},
                },
            ],
        }
    )
    assert err.fields == {
        "services": {
            "svc": [
                f"invalid reference 'client_certificate: {missing}' (no such entry in "
                "'certificates')"
            ],
            "svc2": [
                f'invalid reference \'client_certificate: {{"id":"{missing}"}}\' (no such '
                "entry in 'certificates')"
            ],
        }
    }
    loaded = load_declarative(
        {
            "_format_version": "3.0",
            **entities(pki),
            "services": [
                {
                    "name": "svc",
                    "url": "https://backend:8443",
                    "client_certificate": CLIENT_CERT_ID,
                    "tls_verify": True,
                    "tls_verify_depth": 2,
                    "ca_certificates": [CA_ID, missing],
                }
            ],
        }
    )
    svc = loaded.service("svc")
    assert svc.client_certificate is not None and svc.client_certificate.id == CLIENT_CERT_ID
    assert (svc.protocol, svc.port, svc.tls_verify, svc.tls_verify_depth) == (
        "https",
        8443,
        True,
        2,
    )
    assert svc.ca_certificates == (CA_ID, missing)  # not a reference: never checked at load


def test_tls_fields_need_an_https_service(pki: Pki) -> None:
    """services.lua entity checks: ``client_certificate``, ``tls_verify``,
    ``tls_verify_depth`` and ``ca_certificates`` must be null unless the protocol is https
    or tls; each failed ``conditional`` adds its message to @entity (schema/init.lua)."""
    err = _error(
        {
            **entities(pki),
            "services": [
                {
                    "name": "plain",
                    "url": "http://backend:8080",
                    "client_certificate": CLIENT_CERT_ID,
                    "tls_verify": False,
                }
            ],
        }
    )
    assert err.fields == {
        "services": {
            1: {
                "client_certificate": "value must be null",
                "tls_verify": "value must be null",
                "@entity": ["failed conditional validation given value of field 'protocol'"] * 2,
            }
        }
    }


def test_certificate_and_ca_certificate_entity_checks(pki: Pki) -> None:
    """certificates.lua (typedefs.certificate/key, "certificate does not match key") and
    ca_certificates.lua (one certificate, not expired, a CA)."""
    err = _error(
        {
            "certificates": [
                {"cert": pki.gateway.cert_pem, "key": pki.server.key_pem},
                {"cert": "not a certificate", "key": pki.gateway.key_pem},
                {"cert": pki.gateway.cert_pem},
            ]
        }
    )
    assert err.fields["certificates"][1] == {"@entity": ["certificate does not match key"]}
    assert err.fields["certificates"][2]["cert"].startswith("invalid certificate: ")
    assert err.fields["certificates"][3] == {"key": "required field missing"}
    expired = _issue("old CA", None, ca=True, days=-1)
    err = _error(
        {
            "ca_certificates": [
                {"cert": pki.server.cert_pem},
                {"cert": pki.ca.cert_pem + pki.other_ca.cert_pem},
                {"cert": expired.cert_pem},
            ]
        }
    )
    assert err.fields["ca_certificates"] == {
        1: {
            "@entity": [
                "certificate does not appear to be a CA because it is missing the "
                '"CA" basic constraint'
            ]
        },
        2: {"@entity": ["please submit only one certificate at a time"]},
        3: {"@entity": ['certificate expired, "Not After" time is in the past']},
    }


def test_certificate_fields_take_env_vault_references(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cert`` and ``key`` are ``referenceable`` (certificates.lua): a reference is not
    validated as PEM and resolves through the env vault (kong/vaults/env/init.lua)."""
    monkeypatch.setenv("UPSTREAM_CLIENT_CERT", pki.gateway.cert_pem)
    monkeypatch.setenv("UPSTREAM_CLIENT_KEY", pki.gateway.key_pem)
    loaded = load_declarative(
        {
            "_format_version": "3.0",
            "certificates": [
                {
                    "id": CLIENT_CERT_ID,
                    "cert": "{vault://env/upstream-client-cert}",
                    "key": "{vault://env/upstream-client-key}",
                }
            ],
        }
    )
    (cert,) = loaded.certificates
    assert (cert.cert, cert.key) == (pki.gateway.cert_pem, pki.gateway.key_pem)


# ------------------------------------------------------------------------------------------
# (d) the real backend behind TLS with client certificates
# ------------------------------------------------------------------------------------------


@pytest.mark.gunicorn
async def test_backend_listener_requires_the_gateway_certificate(tmp_path: Path) -> None:
    """backend/gunicorn.conf.py with ``GUNICORN_CERTFILE``/``KEYFILE``/``CA_CERTS`` and
    ``GUNICORN_CERT_REQS=required`` and the certificates of scripts/dev-certs: a client
    without a certificate gets no answer (the handshake fails), the harness presenting the
    gateway certificate and verifying the backend against the dev CA gets its health."""
    certs = tmp_path / "certs"
    subprocess.run(
        [str(REPO / "scripts/dev-certs"), "--out", str(certs)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    env = {
        "GUNICORN_CERTFILE": str(certs / "backend.pem"),
        "GUNICORN_KEYFILE": str(certs / "backend-key.pem"),
        "GUNICORN_CA_CERTS": str(certs / "ca.pem"),
        "GUNICORN_CERT_REQS": "required",
    }
    anonymous = ssl.create_default_context(cafile=certs / "ca.pem")
    gateway_ctx = ssl.create_default_context(cafile=certs / "ca.pem")
    gateway_ctx.load_cert_chain(certs / "gateway.pem", certs / "gateway-key.pem")
    with running_backend(tmp_path / "backend", env, probe_tls=gateway_ctx) as backend:
        assert backend.url.startswith("https://")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{backend.url}/api/auth/health/live/", verify=anonymous, timeout=5)
        yml = {
            "certificates": [
                {
                    "id": CLIENT_CERT_ID,
                    "cert": (certs / "gateway.pem").read_text(),
                    "key": (certs / "gateway-key.pem").read_text(),
                }
            ],
            "ca_certificates": [{"id": CA_ID, "cert": (certs / "ca.pem").read_text()}],
            "services": [
                {
                    "name": "auth",
                    "url": f"https://localhost:{backend.port}",
                    "client_certificate": CLIENT_CERT_ID,
                    "tls_verify": True,
                    "ca_certificates": [CA_ID],
                    "routes": [
                        {"name": "health", "paths": ["/api/auth/health"], "strip_path": False}
                    ],
                },
                {
                    "name": "no-cert",
                    "url": f"https://localhost:{backend.port}",
                    "tls_verify": True,
                    "ca_certificates": [CA_ID],
                    "routes": [{"name": "no-cert", "paths": ["/no-cert"]}],
                },
            ],
        }
        async with gateway(tmp_path / "gw", yml) as (_, client):
            health = await client.get("/api/auth/health/live/")
            refused = await client.get("/no-cert/api/auth/health/live/")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert refused.status_code == 502
