"""The whole edge under faults: the harness gateway (edge-trace, edge-jwt, edge-rate-limit from
the repository's kong.yml) in front of the real backend (gunicorn on its own PostgreSQL
database), every dependency reached through a :class:`~tests.support.fault_proxy.FaultProxy`:

* ``postgres``: the backend → PostgreSQL (127.0.0.1:5432, a database made for the run);
* ``redis``: the backend, edge-jwt's revocations and edge-rate-limit's counters → Redis;
* ``jwks``: edge-jwt → the backend's JWKS endpoint;
* ``otlp``: edge-trace and the backend's OpenTelemetry SDK → one OTLP/HTTP receiver.

A test cuts or slows one proxy (``with stack.redis.fault("refuse"): …``) and checks what
clients see. The shared services themselves are never stopped: other tests use them.

Every request a test sends goes through :meth:`FaultStack.request` with a client timeout a
little above the configured timeouts on that request's path, so a request that hangs past
them fails the test (a correctness bound, not a speed measurement).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.backend import PASSWORD, Backend, User, bearer, repo_kong_yml, running_backend
from tests.support.fault_proxy import FaultProxy
from tests.support.harness import HarnessRunner, shipped_plugins_runner
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.redis_proxy import RedisProxy

PLUGINS = ("edge-trace", "edge-jwt", "edge-rate-limit")
PROFILE = "/api/auth/profile"

# --- the timeouts configured on the paths under test (seconds) --------------------------------
# Kong's socket timeout towards a plugin server (lua_socket_*_timeout; 60 s in Kong, short
# here so a hung server costs a test seconds, not a minute).
PLUGIN_TIMEOUT = 3.0
# The backend's PostgreSQL connect timeout (DATABASE_CONNECT_TIMEOUT).
DATABASE_CONNECT_TIMEOUT = 2.0
# The backend's Redis timeouts: the assertion check (REVOCATIONS_REDIS_TIMEOUT_MS, default)
# and the readiness checks (HEALTH_CHECK_TIMEOUT_MS, default), each per command.
BACKEND_REDIS_TIMEOUT = 0.5
# edge-jwt's JWKS fetch (edge_plugins/jwt/fetch.py: connect 1 s, read 2 s).
JWKS_FETCH_TIMEOUT = 3.0
# What a client allows on top of the configured timeouts: the work itself on a 2-core
# machine shared with other test runs.
MARGIN = 2.0

# A request whose dependencies answer or fail at once.
PROMPT = MARGIN + 1.0
# The backend waits out its Redis timeouts: the assertion check, then the throttle/readiness
# commands of the same request.
REDIS_BOUND = 4 * BACKEND_REDIS_TIMEOUT + MARGIN
POSTGRES_BOUND = DATABASE_CONNECT_TIMEOUT + 2 * BACKEND_REDIS_TIMEOUT + MARGIN
JWKS_BOUND = JWKS_FETCH_TIMEOUT + MARGIN
PLUGIN_BOUND = PLUGIN_TIMEOUT + MARGIN


@dataclass
class FaultStack:
    backend: Backend
    gateway: HarnessRunner
    postgres: FaultProxy
    redis: RedisProxy
    jwks: FaultProxy
    otlp: FaultProxy
    receiver: OtlpReceiver
    database_url: str  # straight to PostgreSQL, for the test's own checks
    stream: str  # the backend's event stream (EVENTS_STREAM)

    def request(
        self, method: str, path: str, *, bound: float = PROMPT, ip: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request through the gateway that must be answered within ``bound`` seconds
        (httpx raises ``TimeoutException`` otherwise, failing the test)."""
        headers = dict(kwargs.pop("headers", None) or {})
        # kong.conf real_ip_header, from a trusted address; by default an address of its own.
        headers["X-Real-IP"] = ip or client_ip()
        with httpx.Client(base_url=self.gateway.url, timeout=bound, trust_env=False) as client:
            return client.request(method, path, headers=headers, **kwargs)

    def sign_up(self) -> User:
        """A verified user with a session, from an address of its own (the sign-up and
        sign-in limits are per client address)."""
        ip = client_ip()
        email = f"faults-{uuid.uuid4().hex[:12]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        registered = self.request("POST", "/api/auth/register", ip=ip, json=credentials)
        assert registered.status_code == 202, registered.text
        token = self.backend.verification_token(email)
        verified = self.request("POST", "/api/auth/verify-email", ip=ip, json={"token": token})
        assert verified.status_code == 200, verified.text
        pair = self.login(email, ip=ip)
        return User(verified.json()["id"], email, pair["access_token"], pair["refresh_token"])

    def login(self, email: str, *, ip: str | None = None, bound: float = PROMPT) -> dict[str, Any]:
        response = self.request(
            "POST",
            "/api/auth/login",
            ip=ip or client_ip(),
            bound=bound,
            json={"email": email, "password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def profile(self, token: str, *, bound: float = PROMPT, **headers: str) -> httpx.Response:
        return self.request("GET", PROFILE, bound=bound, headers={**bearer(token), **headers})

    def backend_metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.backend.metrics_url}/metrics", timeout=PROMPT).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + "{", name + " "))
            and all(f'{k}="{v}"' in line for k, v in labels.items())
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the backend's database directly (not through the fault proxy)."""
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


# Not the backend's key: its kid is one no JWKS lists (a key rotated in somewhere else).
STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def unknown_kid_token(user: User) -> str:
    """The user's claims signed under a kid the gateway has never seen: only a JWKS refetch
    could decide it."""
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    kid = "rotated-" + secrets.token_hex(6)
    return jwt.encode(claims, STRANGER_KEY, algorithm="RS256", headers={"kid": kid})


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def client_ip() -> str:
    """A client address of its own (in 10.0.0.0/8), so limits per address do not carry over
    between requests that are not about them."""
    return "10." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


def assert_backend_refused(response: httpx.Response) -> None:
    """The backend's own 401: the request reached it without an identity it accepts."""
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "not_authenticated", response.text


@contextlib.contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the run (dropped after), as backend/tests does."""
    name = f"faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def through(proxy: FaultProxy, url: str) -> str:
    """``url`` (scheme://[user@]127.0.0.1:port/…) with the proxy's port instead."""
    head, rest = url.split("://", 1)
    userinfo, _, hostpath = rest.rpartition("@")
    _, _, path = hostpath.partition("/")
    at = f"{userinfo}@" if userinfo else ""
    return f"{head}://{at}127.0.0.1:{proxy.port}/{path}"


def gateway_yml(backend: Backend, redis: RedisProxy, jwks: FaultProxy, otlp: FaultProxy) -> str:
    """The repository's kong.yml with the three edge plugins, every dependency through its
    proxy, plus ``/jwks-slow``: the profile behind an edge-jwt of its own key manager (its
    own JWKS URL), so the slow-JWKS fault starts from a clean fetch state."""
    doc = repo_kong_yml(backend, plugins=PLUGINS)
    jwks_uri = f"http://127.0.0.1:{jwks.port}/api/auth/.well-known/jwks.json"
    for plugin in doc["plugins"]:
        config = plugin["config"]
        if plugin["name"] == "edge-jwt":
            # A rotated-in kid may be looked up every second (30 s by default), so each JWKS
            # fault below fetches for real instead of answering from the refetch limit.
            config.update(
                jwks_uri=jwks_uri, revocation_redis_url=redis.url(), jwks_refetch_interval_seconds=1
            )
        elif plugin["name"] == "edge-rate-limit":
            config["redis"] = dict(config["redis"], url=redis.url())
        elif plugin["name"] == "edge-trace":
            config.update(
                otlp_endpoint=f"http://127.0.0.1:{otlp.port}/v1/traces", otlp_flush_interval_ms=100
            )
    (required,) = [
        p["config"]
        for p in doc["plugins"]
        if p["name"] == "edge-jwt" and "route" not in p and "service" not in p
    ]
    doc["services"].append(
        {
            "name": "jwks-slow",
            "url": f"{backend.url}/api/auth",
            "routes": [{"name": "jwks-slow", "paths": ["/jwks-slow"]}],
        }
    )
    doc["plugins"].append(
        {
            "name": "edge-jwt",
            "route": "jwks-slow",
            "config": {**required, "jwks_uri": jwks_uri + "?for=jwks-slow"},
        }
    )
    return yaml.safe_dump(doc, sort_keys=False)


@contextlib.contextmanager
def fault_stack(workdir: Path, postgres_admin_url: str) -> Iterator[FaultStack]:
    tag = secrets.token_hex(4)
    stream = f"auth.events.faults-{tag}"
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(own_database(postgres_admin_url))
        postgres = stack.enter_context(FaultProxy(5432))
        redis = stack.enter_context(RedisProxy(6379))
        receiver = stack.enter_context(OtlpReceiver())
        otlp = stack.enter_context(FaultProxy(receiver.port))
        backend = stack.enter_context(
            running_backend(
                workdir,
                {
                    "DATABASE_URL": through(postgres, database_url),
                    "DATABASE_CONNECT_TIMEOUT": str(int(DATABASE_CONNECT_TIMEOUT)),
                    "REDIS_URL": redis.url(),
                    "EVENTS_STREAM": stream,
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{otlp.port}/v1/traces",
                    "OTEL_BSP_SCHEDULE_DELAY": "100",
                    "OTEL_EXPORTER_OTLP_TIMEOUT": "1",  # seconds, as the Python SDK reads it
                },
            )
        )
        jwks = stack.enter_context(FaultProxy(backend.port))
        gateway = shipped_plugins_runner(
            gateway_yml(backend, redis, jwks, otlp),
            PLUGINS,
            workers=1,
            plugin_timeout=PLUGIN_TIMEOUT,
            conf_lines=("real_ip_header = X-Real-IP",),
        ).start()
        stack.callback(gateway.stop)
        yield FaultStack(
            backend, gateway, postgres, redis, jwks, otlp, receiver, database_url, stream
        )
