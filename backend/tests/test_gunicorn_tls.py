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
