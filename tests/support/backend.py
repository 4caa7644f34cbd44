"""The real auth backend for end-to-end tests through the harness gateway, and its users.

The backend runs as in production (gunicorn with backend/gunicorn.conf.py, SQLite in a
temporary directory, the console email backend captured to a log file) and verifies the
gateway's assertion with the public half of a key made for the session. Users sign up,
verify (the code from the captured email) and log in through the gateway.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import secrets
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.harness import BIN_DIR, REPO, free_port
from tests.support.services import REDIS_TEST_URL

PASSWORD = "correct-horse-battery-9"
# What `make run` sets for the backend (scripts/run-local loads it); the tests' backend too.
LOCAL_RUN_ENV = REPO / "scripts/local-backend.env"
REPO_BACKEND_URL = "http://127.0.0.1:8080"
REPO_JWKS_URI = f"{REPO_BACKEND_URL}/api/auth/.well-known/jwks.json"


@dataclass
class Backend:
    port: int
    dir: Path
    env: dict[str, str]
    log: Path
    gateway_key: Path
    gateway_jwks: Path
    channel: str
    key_prefix: str
    proc: subprocess.Popen[bytes] | None = None
    # The internal API/admin and the metrics listeners (``port`` is the public one).
    internal_port: int = 0
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return self._url(self.port)

    @property
    def internal_url(self) -> str:
        return self._url(self.internal_port)

    @property
    def metrics_url(self) -> str:
        return self._url(self.metrics_port)

    def _url(self, port: int) -> str:
        scheme = "https" if self.env.get("GUNICORN_CERTFILE") else "http"
        return f"{scheme}://127.0.0.1:{port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/api/auth/.well-known/jwks.json"

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(BIN_DIR / "python"), "backend/manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def verification_token(self, email: str, timeout: float = 10) -> str:
        """The code of the newest verification email to ``email`` (console email backend)."""
        return self.mailed_token(email, "verification", timeout=timeout)

    def mailed_token(
        self, email: str, kind: str, timeout: float = 10, skip: frozenset[str] = frozenset()
    ) -> str:
        """The code of the newest ``kind`` email (``verification``, ``password reset``) to
        ``email`` that is not in ``skip``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            blocks = [b for b in text.split("-" * 79) if f"To: {email}" in b]
            pattern = re.escape(kind) + r" token: (\S+)"
            tokens = [m for b in blocks for m in re.findall(pattern, b) if m not in skip]
            if tokens:
                return tokens[-1]
            time.sleep(0.05)
        raise AssertionError(f"no {kind} email to {email} in {self.log}")


def local_run_env(path: Path = LOCAL_RUN_ENV) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``path`` (``#`` comments and blank lines skipped)."""
    settings: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key.strip().isidentifier(), f"{path}: not KEY=VALUE: {line!r}"
            settings[key.strip()] = value.strip()
    return settings


@contextlib.contextmanager
def running_backend(
    workdir: Path, extra_env: dict[str, str] | None = None, probe_tls: ssl.SSLContext | None = None
) -> Iterator[Backend]:
    """The real backend (gunicorn) on three free ports (public, internal, metrics), its data
    and logs under ``workdir``.

    Configured as ``make run`` configures it (:func:`local_run_env`), then ``extra_env``.
    With ``GUNICORN_CERTFILE`` in ``extra_env`` it serves HTTPS, and the readiness probe uses
    ``probe_tls`` (trusting the server, presenting a client certificate if it needs one)."""
    from edge_plugins.jwt.assertion import generate_signing_key

    gateway_key, gateway_jwks = workdir / "gateway-ed25519.pem", workdir / "gateway-jwks.json"
    generate_signing_key(gateway_key, gateway_jwks)
    ports: set[int] = set()
    while len(ports) < 3:  # three different ports: the backend routes by port
        ports.add(free_port())
    port, internal_port, metrics_port = sorted(ports)
    tag = secrets.token_hex(4)
    channel, key_prefix = f"auth.revocations.test-{tag}", f"auth.revoked.test-{tag}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "DJANGO_",
                "GUNICORN_",
                "DATABASE_",
                "EDGE_JWT_",
                "PROMETHEUS_MULTIPROC_DIR",
                "prometheus_multiproc_dir",
            )
        )
    }
    env.update(
        DJANGO_SETTINGS_MODULE="auth_backend.settings",
        DJANGO_SECRET_KEY="edge-jwt-e2e-only-secret-key-0123456789-abcdefghijklmnop",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        GATEWAY_JWKS=str(gateway_jwks),
        GATEWAY_ISSUER="kong-edge",
        SERVICE_NAME="auth-backend",
        REDIS_URL=REDIS_TEST_URL,
        REVOCATIONS_CHANNEL=channel,
        REVOCATIONS_KEY_PREFIX=key_prefix,
        # Sign-in failures counted by this backend only (not by earlier runs or backends).
        LOGIN_THROTTLE_KEY_PREFIX=f"auth.login-throttle.test-{tag}",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
        ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS="0",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_INTERNAL_BIND=f"127.0.0.1:{internal_port}",
        GUNICORN_METRICS_BIND=f"127.0.0.1:{metrics_port}",
        GUNICORN_WORKERS="2",
        GUNICORN_ACCESS_LOG="0",
        LOG_LEVEL="INFO",
    )
    env.update(local_run_env())
    env.update(extra_env or {})
    server = Backend(
        port,
        workdir,
        env,
        workdir / "backend.log",
        gateway_key,
        gateway_jwks,
        channel,
        key_prefix,
        internal_port=internal_port,
        metrics_port=metrics_port,
    )
    server.manage("migrate", "--noinput")
    with server.log.open("wb") as log:
        server.proc = subprocess.Popen(
            [str(BIN_DIR / "gunicorn"), "-c", "backend/gunicorn.conf.py", "auth_backend.wsgi"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(
                        f"{server.url}/api/auth/health/live/", timeout=1, verify=probe_tls or True
                    ).status_code
                    == 200
                ):
                    break
            assert server.proc.poll() is None, server.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "backend did not start"
            time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()


@dataclass
class User:
    id: str
    email: str
    access_token: str
    refresh_token: str


def login(client: httpx.Client, email: str) -> dict[str, Any]:
    response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def sign_up(client: httpx.Client, backend: Backend) -> User:
    """Register, verify (the code from the captured email) and log in, through the gateway."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 202, registered.text  # the same for a taken address
    verified = client.post(
        "/api/auth/verify-email", json={"token": backend.verification_token(email)}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    pair = login(client, email)
    return User(verified.json()["id"], email, pair["access_token"], pair["refresh_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def repo_kong_yml(backend: Backend, plugins: tuple[str, ...] = ("edge-jwt",)) -> dict[str, Any]:
    """The repository's kong.yml, only ``plugins`` kept, pointed at the test backend.

    Addresses, the gateway signing key and the revocation channel are the test's; every
    plugin gets its own copy of its config (the file shares them through YAML anchors).
    """
    doc = yaml.safe_load((REPO / "kong/kong.yml").read_text())
    (service,) = doc["services"]
    assert service["url"] == REPO_BACKEND_URL
    service["url"] = backend.url
    doc["plugins"] = [
        dict(p, config=copy.deepcopy(p["config"])) for p in doc["plugins"] if p["name"] in plugins
    ]
    for plugin in doc["plugins"]:
        if plugin["name"] != "edge-jwt":
            continue
        config = plugin["config"]
        assert config["jwks_uri"] == REPO_JWKS_URI
        config.update(
            jwks_uri=backend.jwks_uri,
            assertion_signing_key_file=str(backend.gateway_key),
            revocation_redis_url=REDIS_TEST_URL,
            revocation_channel=backend.channel,
            revocation_key_prefix=backend.key_prefix,
        )
    return doc
