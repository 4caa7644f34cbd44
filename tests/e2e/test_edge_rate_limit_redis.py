"""edge-rate-limit with the ``redis`` policy: two gateway nodes, one shared counter.

Each node is a harness gateway with its own edge-rate-limit plugin-server process and two
workers, as two Kong nodes would be; both point at the real Redis. Redis failures are
played by a TCP proxy in front of it (tests/support/redis_proxy.py): cut, black-holed, slowed.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml

from tests.support.harness import HarnessRunner
from tests.support.redis_proxy import RedisProxy
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require

pytestmark = pytest.mark.redis

SERVERS: dict[str, dict[str, str]] = {"edge-rate-limit": {}}
COMMANDS = {"edge-rate-limit": "edge-rate-limit --metrics-port 0"}


@pytest.fixture(autouse=True)
def _redis() -> None:
    require(redis_unavailable())


def kong_yml(upstream_port: int, redis_url: str, **config: Any) -> str:
    plugin_config = {
        "limits": [{"limit": 50, "period": "minute"}],
        "limit_by": "ip",
        "policy": "redis",
        "redis": {
            "url": redis_url,
            "timeout_ms": 50,
            "key_prefix": f"t-{uuid.uuid4().hex}",
            "breaker_threshold": 2,
            "breaker_reset_seconds": 1,
        },
        **config,
    }
    return yaml.safe_dump(
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "up",
                    "url": f"http://127.0.0.1:{upstream_port}",
                    # A named route gets the same id on every node (Kong's
                    # declarative generate_ids), so both nodes share its counters.
                    "routes": [{"name": "login", "paths": ["/login"]}],
                }
            ],
            "plugins": [{"name": "edge-rate-limit", "route": "login", "config": plugin_config}],
        },
        sort_keys=False,
    )


@pytest.fixture
def nodes(upstream: Any) -> Iterator[list[HarnessRunner]]:
    yml = kong_yml(upstream.port, REDIS_TEST_URL)
    runners = [HarnessRunner(yml, servers=SERVERS, commands=COMMANDS).start() for _ in range(2)]
    try:
        yield runners
    finally:
        for runner in runners:
            runner.stop()


def test_two_nodes_and_sixteen_clients_admit_exactly_the_limit(nodes: list[HarnessRunner]) -> None:
    clients = [httpx.Client(base_url=node.url, timeout=30, trust_env=False) for node in nodes]

    def hammer(index: int) -> list[int]:
        client = clients[index % 2]
        return [client.get("/login").status_code for _ in range(10)]

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = [s for batch in pool.map(hammer, range(16)) for s in batch]
    finally:
        for client in clients:
            client.close()
    counts = Counter(statuses)
    print(
        f"\ntwo nodes, 16 clients, 160 requests: admitted {counts[200]}/50, rejected {counts[429]}"
    )
    assert counts[200] == 50, counts
    assert counts[429] == 110, counts


# --- Redis failing ----------------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[RedisProxy]:
    with RedisProxy(6379) as running:
        yield running


def one_node(
    upstream: Any, proxy: RedisProxy, metrics_port: int = 0, **config: Any
) -> HarnessRunner:
    yml = kong_yml(upstream.port, proxy.url(), limits=[{"limit": 3, "period": "minute"}], **config)
    command = f"edge-rate-limit --metrics-port {metrics_port}"
    return HarnessRunner(yml, servers=SERVERS, commands={"edge-rate-limit": command}).start()


def metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


@pytest.mark.parametrize(
    ("failure", "delay_ms"), [("blackhole", None), ("refuse", None), ("delay", 200)]
)
@pytest.mark.parametrize("mode", ["open", "closed", "local"])
def test_each_store_failure_mode_does_what_it_says(
    upstream: Any, proxy: RedisProxy, mode: str, failure: str, delay_ms: float | None
) -> None:
    gw = one_node(upstream, proxy, on_store_failure=mode, expected_nodes=3)
    try:
        with gw.client() as client:
            healthy = [client.get("/login") for _ in range(6)]
            assert [r.status_code for r in healthy] == [200, 200, 200, 429, 429, 429]

            proxy.set_mode(failure, delay_ms=delay_ms)
            # An outage costs a store call only until the breaker opens (2 failures), not on
            # every request: asserted on what reaches Redis, not on how long requests took.
            outage = [client.get("/login") for _ in range(2)]
            proxy.reset_counters()
            outage += [client.get("/login") for _ in range(10)]
            assert proxy.accepted == 0 and proxy.client_bytes == 0, "the open breaker sent nothing"
            statuses = [r.status_code for r in outage]
            if mode == "open":
                assert statuses == [200] * 12
                assert not any("RateLimit-Limit" in r.headers for r in outage)
            elif mode == "closed":
                assert statuses == [503] * 12
                assert {r.headers["Retry-After"] for r in outage} == {"1"}
            else:  # per-node counters at 3 // 3 = 1, counted afresh
                assert statuses == [200] + [429] * 11
                assert outage[0].headers["RateLimit-Limit"] == "1"

            proxy.set_mode("pass")
            time.sleep(1.3)  # breaker_reset_seconds: 1, then one probe
            recovered = [client.get("/login") for _ in range(2)]
    finally:
        gw.stop()
    # Decided by Redis again: the shared counter from before the outage (3 of 3 used).
    assert [r.status_code for r in recovered] == [429, 429]
    assert recovered[0].headers["RateLimit-Limit"] == "3"


def test_slow_but_in_time_redis_still_decides(upstream: Any, proxy: RedisProxy) -> None:
    gw = one_node(upstream, proxy, on_store_failure="closed")
    try:
        proxy.set_mode("delay", delay_ms=10)
        with gw.client() as client:
            statuses = [client.get("/login").status_code for _ in range(4)]
    finally:
        gw.stop()
    assert statuses == [200, 200, 200, 429]


def test_breaker_state_is_exported_and_recovers(upstream: Any, proxy: RedisProxy) -> None:
    from tests.support.harness import free_port

    port = free_port()
    gw = one_node(upstream, proxy, metrics_port=port, on_store_failure="local")
    try:
        with gw.client() as client:
            client.get("/login")
            assert metric(port, "edge_rate_limit_breaker_state") == 0
            assert metric(port, "edge_rate_limit_store_seconds_count") >= 1
            proxy.set_mode("refuse")
            for _ in range(3):
                client.get("/login")
            assert metric(port, "edge_rate_limit_breaker_state") == 2
            assert metric(port, "edge_rate_limit_decisions_total") >= 4
            proxy.set_mode("pass")
            time.sleep(1.3)
            client.get("/login")
            assert metric(port, "edge_rate_limit_breaker_state") == 0
    finally:
        gw.stop()
