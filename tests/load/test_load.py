"""Load and a bounded soak through the gateway in front of the real backend.

``CLIENTS`` clients, for ``DURATION`` seconds, each in a loop: register, verify (the code
from the captured email), log in, read the profile — through the harness gateway running
kong/kong.yml's chain (edge-trace, edge-jwt, edge-rate-limit; limits raised so the limiter
is not what is measured). Then no 5xx, and the database holds exactly the users that were
registered: none lost, none twice, every verified one verified. p50/p95/p99 per endpoint
are printed (``-s`` shows them), never asserted: speed belongs in ``make bench``.

The soak here is the bounded one: ``SOAK_REQUESTS`` profile reads after a warm-up at the
same concurrency, then each plugin server's resident memory may not have grown by more than
``RSS_GROWTH_BOUND`` and its live greenlets (``edge_plugin_greenlets``) by no more than
the RPC connections a pool may still open. The 50,000-request soak is in ``make bench``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.bench.measure import footprint, percentile, server_pid
from tests.load.stack import (
    PROFILE,
    Journey,
    metrics_ports,
    one_user,
    stack_runner,
    stored_users,
)
from tests.support.backend import Backend, running_backend
from tests.support.harness import HarnessRunner
from tests.support.services import redis_unavailable, require

CLIENTS = 4
DURATION = 8.0  # seconds of sign-ups
PROFILES_PER_USER = 3
SOAK_REQUESTS = 1500
RSS_GROWTH_BOUND = 8 * 1024 * 1024  # bytes per plugin server, after the warm-up
# Each gateway worker's RPC pool may still open up to CLIENTS connections the warm-up did
# not need (kong-pdk serves each in a greenlet); a leak grows with the requests, thousands.
GREENLET_SLACK = 2 * CLIENTS


@dataclass
class Stack:
    backend: Backend
    gateway: HarnessRunner
    processes: dict[str, tuple[int, str]]  # plugin server -> (pid, metrics URL)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(redis_unavailable())
    ports = metrics_ports()
    with running_backend(tmp_path_factory.mktemp("load")) as backend:
        with stack_runner(backend, f"load-rl-{uuid.uuid4().hex[:12]}", ports) as gateway:
            processes = {
                name: (server_pid(gateway, name), f"http://127.0.0.1:{port}/metrics")
                for name, port in ports.items()
            }
            yield Stack(backend, gateway, processes)


def _clients(count: int, target: Callable[[int], None]) -> None:
    """``target(i)`` in ``count`` threads at once; a client's exception fails the test."""
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(target, range(count)))


def _report(journey: Journey, title: str) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':<14} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for endpoint, values in journey.latencies_ms.items():
        print(
            f"{endpoint:<14} {len(values):>6} {percentile(values, 50):>8.1f} "
            f"{percentile(values, 95):>8.1f} {percentile(values, 99):>8.1f}"
        )


def test_concurrent_sign_ups_lose_no_user_and_answer_no_5xx(
    stack: Stack,
) -> None:
    backend, gateway = stack.backend, stack.gateway
    journey = Journey()
    deadline = time.monotonic() + DURATION

    def client(_: int) -> None:
        with gateway.client() as http:
            while time.monotonic() < deadline:
                one_user(http, backend, journey, PROFILES_PER_USER)

    _clients(CLIENTS, client)
    _report(journey, f"load: {CLIENTS} clients for {DURATION:.0f} s through the gateway")

    assert journey.server_errors() == {}
    expected = {"register": 202, "verify-email": 200, "login": 200, "profile": 200}
    for endpoint, statuses in journey.statuses.items():
        assert set(statuses) == {expected[endpoint]}, (endpoint, sorted(set(statuses)))
    assert len(journey.registered) >= CLIENTS, "every client completed at least one sign-up"
    assert journey.profile_mismatches == []
    stored = stored_users(backend.dir / "db.sqlite3")
    emails = [email for email, _ in stored]
    assert len(emails) == len(set(emails)), "a user stored twice"
    assert sorted(emails) == sorted(journey.registered), "a user lost or one nobody registered"
    assert {email for email, verified in stored if verified} == set(journey.verified)


def test_plugin_servers_stay_flat_over_a_bounded_soak(
    stack: Stack,
) -> None:
    backend, gateway, processes = stack.backend, stack.gateway, stack.processes
    setup = Journey()
    with gateway.client() as http:
        for _ in range(CLIENTS):
            one_user(http, backend, setup, profiles=0)
    assert len(setup.tokens) == CLIENTS, setup.statuses
    soak = Journey()

    def reads(count: int) -> None:
        def client(index: int) -> None:
            headers = {"Authorization": f"Bearer {setup.tokens[index]}"}
            with gateway.client() as http:
                for _ in range(count):
                    soak.timed("profile", lambda: http.get(PROFILE, headers=headers))

        _clients(CLIENTS, client)

    reads(max(50, SOAK_REQUESTS // 10 // CLIENTS))  # warm-up: connections, caches, imports
    before = footprint(processes)
    soak.latencies_ms.clear()
    soak.statuses.clear()
    reads(SOAK_REQUESTS // CLIENTS)
    after = footprint(processes)
    _report(soak, f"soak: {SOAK_REQUESTS} profile reads, {CLIENTS} clients")
    for name in processes:
        print(
            f"{name:<16} rss {before[name]['rss_bytes'] / 2**20:6.1f} -> "
            f"{after[name]['rss_bytes'] / 2**20:6.1f} MiB, greenlets "
            f"{before[name]['greenlets']} -> {after[name]['greenlets']}"
        )

    assert set(soak.statuses["profile"]) == {200}
    for name in processes:
        grown = after[name]["rss_bytes"] - before[name]["rss_bytes"]
        assert grown <= RSS_GROWTH_BOUND, (name, grown)
        assert after[name]["greenlets"] <= before[name]["greenlets"] + GREENLET_SLACK, (
            name,
            before[name],
            after[name],
        )
