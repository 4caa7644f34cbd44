"""backend/gunicorn.conf.py: TLS on the public listener from ``GUNICORN_*`` variables
(backend/docs/tls.md). The listener itself, refusing a client without the gateway's
certificate, is exercised in kong/harness/tests/test_upstream_tls.py."""

from __future__ import annotations

import runpy
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tls_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Any]:
    for name in (
        "GUNICORN_CERTFILE",
        "GUNICORN_KEYFILE",
        "GUNICORN_CA_CERTS",
        "GUNICORN_CERT_REQS",
        "GUNICORN_INTERNAL_CA_CERTS",
        "GUNICORN_METRICS_CA_CERTS",
    ):
        monkeypatch.delenv(name, raising=False)
    config = runpy.run_path(str(REPO / "backend/gunicorn.conf.py"))
    assert "certfile" not in config  # unset: plain HTTP, as make run serves
    return config["_tls_settings"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for path in paths.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")  # gunicorn reads them, not we
    return {name: str(path) for name, path in paths.items()}


def test_tls_needs_a_certificate_and_requires_clients_once_a_ca_is_given(
    tls_settings: Callable[[dict[str, str]], Any], files: dict[str, str]
) -> None:
    server_only = tls_settings(
        {"GUNICORN_CERTFILE": files["cert"], "GUNICORN_KEYFILE": files["key"]}
    )
    assert server_only == {
        "certfile": files["cert"],
        "keyfile": files["key"],
        "ca_certs": None,
        "cert_reqs": ssl.CERT_NONE,
        "listener_ca_certs": {},
    }
    mutual = tls_settings(
        {
            "GUNICORN_CERTFILE": files["cert"],
            "GUNICORN_KEYFILE": files["key"],
            "GUNICORN_CA_CERTS": files["ca"],
        }
    )
    assert mutual["cert_reqs"] == ssl.CERT_REQUIRED
    optional = tls_settings(
        {
            "GUNICORN_CERTFILE": files["cert"],
            "GUNICORN_CA_CERTS": files["ca"],
            "GUNICORN_CERT_REQS": "optional",
        }
    )
    assert optional["cert_reqs"] == ssl.CERT_OPTIONAL


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GUNICORN_CA_CERTS": "ca", "GUNICORN_CERT_REQS": "required"}, "need GUNICORN_CERTFILE"),
        (
            {"GUNICORN_CERTFILE": "cert", "GUNICORN_CERT_REQS": "required"},
            "needs GUNICORN_CA_CERTS",
        ),
        (
            {
                "GUNICORN_CERTFILE": "cert",
                "GUNICORN_CA_CERTS": "ca",
                "GUNICORN_CERT_REQS": "always",
            },
            "must be one of none, optional, required",
        ),
        ({"GUNICORN_CERTFILE": "missing", "GUNICORN_CA_CERTS": "ca"}, "TLS file not found"),
        (
            {"GUNICORN_CERTFILE": "cert", "GUNICORN_METRICS_CA_CERTS": "ca"},
            "need GUNICORN_CA_CERTS",
        ),
        (
            {
                "GUNICORN_CERTFILE": "cert",
                "GUNICORN_CA_CERTS": "ca",
                "GUNICORN_INTERNAL_CA_CERTS": "missing",
            },
            "TLS file not found",
        ),
    ],
)
def test_a_partial_tls_setting_stops_the_start(
    tls_settings: Callable[[dict[str, str]], Any],
    files: dict[str, str],
    env: dict[str, str],
    message: str,
) -> None:
    """Half a TLS configuration never falls back to plain HTTP (or to unverified clients)."""
    env = {k: files.get(v, v) for k, v in env.items()}
    with pytest.raises(RuntimeError, match=message):
        tls_settings(env)


def test_each_listener_accepts_only_its_own_client_ca(tmp_path: Path) -> None:
    """A real gunicorn with the certificates of scripts/dev-certs and one client CA per
    listener, as the compose stack runs it: the gateway's certificate opens the public
    listener and no other, Prometheus's the metrics listener only, the internal client's the
    internal API only (the handshake fails on the others)."""
    import subprocess

    import httpx

    from tests.support.backend import running_backend

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
        "GUNICORN_INTERNAL_CA_CERTS": str(certs / "internal-ca.pem"),
        "GUNICORN_METRICS_CA_CERTS": str(certs / "monitoring-ca.pem"),
        "GUNICORN_CERT_REQS": "required",
    }

    def client_context(stem: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certs / "ca.pem")
        context.load_cert_chain(certs / f"{stem}.pem", certs / f"{stem}-key.pem")
        return context

    clients = {stem: client_context(stem) for stem in ("gateway", "prometheus", "internal-client")}
    with running_backend(tmp_path / "backend", env, probe_tls=clients["gateway"]) as backend:
        listeners = {
            "public": f"{backend.url}/api/auth/health/live/",
            "internal": f"{backend.internal_url}/internal/auth/health",
            "metrics": f"{backend.metrics_url}/metrics",
        }
        opens = {"gateway": "public", "internal-client": "internal", "prometheus": "metrics"}
        answered = {}
        for stem, context in clients.items():
            for listener, url in listeners.items():
                try:
                    answered[stem, listener] = httpx.get(url, verify=context, timeout=10)
                except httpx.TransportError:
                    answered[stem, listener] = None
    for (stem, listener), response in answered.items():
        if opens[stem] == listener:
            assert response is not None, (stem, listener)
        else:
            assert response is None, (stem, listener, response)
    assert answered["prometheus", "metrics"].status_code == 200
    assert answered["gateway", "public"].status_code == 200
