"""Rate-limit decisions: LocalLimiter against RedisLimiter, and over-admission with 2 nodes.

Decision cost, each for ``sliding_window`` and ``gcra``:
  local  one key    the process-local store, every decision on the same key
  local  many keys  the same, decisions spread round-robin over ``keys`` keys
  redis  one key    RedisLimiter (one EVALSHA round trip per decision) on one key
  redis  many keys  the same over ``keys`` keys
One thread, one decision at a time, so the Redis rows are round-trip latency (loopback),
not throughput under concurrency. Variants run in interleaved blocks so machine noise hits
them alike; each decision is timed with ``perf_counter_ns``. The limit is small enough that
the one-key rows mix admissions and rejections, which take different paths.

Over-admission: two nodes (each its own limiter and Redis connections, as two gateways
have) decide for one key at once from two threads until each has tried ``limit`` times;
admitted minus the limit is what a shared counter let through too many. With Redis down a
node falls back to its own counter at limit ÷ ``expected_nodes`` (2 here), measured too.
Redis keys get a unique prefix and are deleted afterwards.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from edge_plugins.ratelimit.limits import Limit
from edge_plugins.ratelimit.local_store import LocalLimiter
from edge_plugins.ratelimit.redis_store import RedisLimiter, RedisSettings
from tests.bench.measure import percentile
from tests.support.services import REDIS_TEST_URL, redis_unavailable

ALGORITHMS = ("sliding_window", "gcra")


@dataclass
class Variant:
    store: str
    algorithm: str
    keys: str
    decide: Callable[[str], bool]
    key_count: int
    samples_ns: list[int] = field(default_factory=list)
    admitted: int = 0
    next_key: int = 0

    def run(self, count: int) -> None:
        decide, samples, keys = self.decide, self.samples_ns, self.key_count
        for _ in range(count):
            key = f"client-{self.next_key}"
            self.next_key = (self.next_key + 1) % keys
            started = time.perf_counter_ns()
            self.admitted += decide(key)
            samples.append(time.perf_counter_ns() - started)


def variants(
    limits: list[Limit], key_count: int, redis_limiter: RedisLimiter | None
) -> list[Variant]:
    local = LocalLimiter(max_keys=max(100_000, 2 * key_count))
    found = []
    for algorithm in ALGORITHMS:

        def local_decide(key: str, algorithm: str = algorithm) -> bool:
            return local.take("bench", key, limits, algorithm=algorithm, now=time.time()).allowed

        found += [
            Variant("local", algorithm, "one", local_decide, 1),
            Variant("local", algorithm, "many", local_decide, key_count),
        ]
        if redis_limiter is not None:

            def redis_decide(key: str, algorithm: str = algorithm) -> bool:
                return redis_limiter.take("bench", key, limits, algorithm=algorithm).allowed

            found += [
                Variant("redis", algorithm, "one", redis_decide, 1),
                Variant("redis", algorithm, "many", redis_decide, key_count),
            ]
    return found


def run(
    blocks: int, block: int, key_count: int, limit: int, url: str
) -> tuple[list[Variant], str | None]:
    unavailable = redis_unavailable(url)
    prefix = f"bench-rl-{uuid.uuid4().hex}"
    redis_limiter = None
    if unavailable is None:
        # Generous timeout: a benchmark measures latency, it must not trip the breaker.
        redis_limiter = RedisLimiter(RedisSettings(url=url, key_prefix=prefix, timeout_ms=2000))
    found = variants([Limit(limit, 1)], key_count, redis_limiter)
    try:
        for variant in found:  # warm-up: connections, script load, dict growth
            variant.run(min(block, 200))
            variant.samples_ns.clear()
            variant.admitted = 0
        for _ in range(blocks):
            for variant in found:
                variant.run(block)
    finally:
        if redis_limiter is not None:
            _delete(url, prefix)
            redis_limiter.close()
    return found, unavailable


def decision_costs(
    blocks: int, block: int, key_count: int, limit: int, url: str = REDIS_TEST_URL
) -> list[dict[str, Any]]:
    """Decisions per second and µs per decision of every variant (see the module doc)."""
    found, unavailable = run(blocks, block, key_count, limit, url)
    if unavailable is not None:
        raise RuntimeError(f"Redis at {url} is needed for the bench: {unavailable}")
    rows = []
    for variant in found:
        samples = variant.samples_ns
        rows.append(
            {
                "store": variant.store,
                "algorithm": variant.algorithm,
                "keys": variant.keys,
                "decisions_per_second": len(samples) / (sum(samples) / 1e9),
                "median_us": statistics.median(samples) / 1000,
                "p99_us": percentile(samples, 99) / 1000,
                "admitted": variant.admitted / len(samples),
            }
        )
    return rows


def over_admission(limit: int, url: str = REDIS_TEST_URL) -> dict[str, Any]:
    """Admitted beyond ``limit`` (per minute, one key) when 2 nodes decide at once: with the
    shared Redis counter, and with each node's local fallback (limit ÷ 2)."""
    nodes = 2
    prefix = f"bench-rl-2n-{uuid.uuid4().hex}"
    out: dict[str, Any] = {"limit": limit, "nodes": nodes}
    try:
        for store in ("redis", "local-fallback"):
            admitted = _two_nodes(store, limit, nodes, url, prefix)
            out[store] = {
                "tried": nodes * limit,
                "admitted": admitted,
                "over_admitted": max(0, admitted - limit),
            }
    finally:
        _delete(url, prefix)
    return out


def _two_nodes(store: str, limit: int, nodes: int, url: str, prefix: str) -> int:
    """Decisions for one key from ``nodes`` threads, each a node with its own limiter;
    each tries ``limit`` times. Answers how many were admitted in all."""
    barrier = threading.Barrier(nodes)
    admitted = [0] * nodes

    def node(index: int) -> None:
        if store == "redis":
            limiter = RedisLimiter(RedisSettings(url=url, key_prefix=prefix, timeout_ms=2000))
            limits = [Limit(limit, 60)]
            try:
                barrier.wait()
                for _ in range(limit):
                    admitted[index] += limiter.take("bench", "one-client", limits).allowed
            finally:
                limiter.close()
        else:
            local = LocalLimiter()
            share = [Limit(max(1, limit // nodes), 60)]  # on_store_failure: local
            barrier.wait()
            for _ in range(limit):
                admitted[index] += local.take("bench", "one-client", share, now=time.time()).allowed

    threads = [threading.Thread(target=node, args=(i,)) for i in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(admitted)


def _delete(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()
