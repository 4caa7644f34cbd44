"""The repository's gateway (kong/kong.yml: edge-trace, edge-jwt, edge-rate-limit) in front
of the real backend, for the load test and ``make bench``; limits far above what they send.

Shared by tests/load/test_load.py and tests/bench/end_to_end.py.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support.backend import PASSWORD, Backend, repo_kong_yml
from tests.support.harness import SHIPPED_FLAGS, HarnessRunner, free_port
from tests.support.services import REDIS_TEST_URL

PLUGINS = ("edge-trace", "edge-jwt", "edge-rate-limit")
UNLIMITED = 1_000_000  # per minute: the load test measures the stack, not the limiter
PROFILE = "/api/auth/profile"


def stack_yml(backend: Backend, rl_prefix: str) -> str:
    """kong/kong.yml for ``backend``: every route's rate limit raised to :data:`UNLIMITED`,
    counters in the test Redis under ``rl_prefix``, no span export."""
    doc = repo_kong_yml(backend, plugins=PLUGINS)
    for plugin in doc["plugins"]:
        config = plugin["config"]
        if plugin["name"] == "edge-rate-limit":
            config["limits"] = [{"limit": UNLIMITED, "period": "minute"}]
            config["redis"] = dict(config["redis"], url=REDIS_TEST_URL, key_prefix=rl_prefix)
        elif plugin["name"] == "edge-trace":
            config.pop("otlp_endpoint", None)
    return yaml.safe_dump(doc, sort_keys=False)


def stack_runner(backend: Backend, rl_prefix: str, metrics_ports: dict[str, int]) -> HarnessRunner:
    """The gateway for :func:`stack_yml`, each plugin server with a metrics endpoint."""
    return HarnessRunner(
        stack_yml(backend, rl_prefix),
        servers={name: {} for name in PLUGINS},
        commands={
            name: f"{name} --metrics-port {metrics_ports[name]} {SHIPPED_FLAGS.get(name, '')}"
            for name in PLUGINS
        },
    )


def metrics_ports() -> dict[str, int]:
    return {name: free_port() for name in PLUGINS}


@dataclass
class Journey:
    """What clients did: statuses and latencies (ms) per endpoint, users per outcome."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    registered: list[str] = field(default_factory=list)
    verified: dict[str, str] = field(default_factory=dict)  # email -> user id
    tokens: list[str] = field(default_factory=list)
    profile_mismatches: list[str] = field(default_factory=list)

    def timed(self, endpoint: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        started = time.perf_counter()
        response = call()
        self.latencies_ms[endpoint].append((time.perf_counter() - started) * 1000)
        self.statuses[endpoint].append(response.status_code)
        return response

    def server_errors(self) -> dict[str, list[int]]:
        return {
            endpoint: [s for s in found if s >= 500]
            for endpoint, found in self.statuses.items()
            if any(s >= 500 for s in found)
        }


def one_user(client: httpx.Client, backend: Backend, journey: Journey, profiles: int) -> None:
    """Register, verify, log in, read the profile ``profiles`` times, through ``client``."""
    email = f"load-{uuid.uuid4().hex[:16]}@example.com"
    credentials = {"email": email, "password": PASSWORD}
    registered = journey.timed(
        "register", lambda: client.post("/api/auth/register", json=credentials)
    )
    if registered.status_code != 202:
        return
    journey.registered.append(email)
    token = backend.verification_token(email)
    verified = journey.timed(
        "verify-email", lambda: client.post("/api/auth/verify-email", json={"token": token})
    )
    if verified.status_code != 200:
        return
    journey.verified[email] = verified.json()["id"]
    login = journey.timed("login", lambda: client.post("/api/auth/login", json=credentials))
    if login.status_code != 200:
        return
    access = login.json()["access_token"]
    journey.tokens.append(access)
    headers = {"Authorization": f"Bearer {access}"}
    for _ in range(profiles):
        profile = journey.timed("profile", lambda: client.get(PROFILE, headers=headers))
        if profile.status_code == 200 and profile.json().get("email") != email:
            journey.profile_mismatches.append(email)


def stored_users(database: Path, prefix: str = "load-") -> list[tuple[str, bool]]:
    """(email, verified) of every user whose email starts with ``prefix``, duplicates kept."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT email, email_verified_at IS NOT NULL FROM accounts_user WHERE email LIKE ?",
            (f"{prefix}%",),
        ).fetchall()
    return [(email, bool(verified)) for email, verified in rows]
