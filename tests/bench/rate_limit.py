"""Cost of one rate-limit decision: LocalLimiter against RedisLimiter, side by side in one run.

Variants, each for ``sliding_window`` and ``gcra``:
  local  one key    the process-local store, every request on the same key
  local  many keys  the same, requests spread round-robin over ``--keys`` keys
  redis  one key    RedisLimiter (one EVALSHA round trip per decision) on one key
  redis  many keys  the same over ``--keys`` keys
One thread, one decision at a time, so the Redis rows are round-trip latency (loopback by
default), not throughput under concurrency. Variants run in interleaved blocks of
``--block`` decisions so machine noise hits them alike; each decision is timed with
``perf_counter_ns``. The limit (``--limit`` per second) is small enough that the one-key
rows mix admissions and rejections, which take different paths. Redis keys get a unique
prefix and are deleted afterwards; when Redis is unreachable only the local rows are shown.

    python -m tests.bench.rate_limit            # --blocks 20 --block 500 --keys 10000
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from edge_plugins.ratelimit.limits import Limit
from edge_plugins.ratelimit.local_store import LocalLimiter
from edge_plugins.ratelimit.redis_store import RedisLimiter, RedisSettings
from tests.services import REDIS_TEST_URL, redis_unavailable

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
                redis_limiter.close()
    return found, unavailable


def report(found: list[Variant], unavailable: str | None, *, limit: int, key_count: int) -> str:
    lines = [
        f"one decision, limit {limit}/s, one thread; many keys = {key_count} keys round-robin",
        f"{'store':<6} {'algorithm':<15} {'keys':<5} {'decisions/s':>12} "
        f"{'median µs':>10} {'p90 µs':>8} {'admitted':>9}",
    ]
    for variant in found:
        samples = variant.samples_ns
        total_s = sum(samples) / 1e9
        p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
        lines.append(
            f"{variant.store:<6} {variant.algorithm:<15} {variant.keys:<5} "
            f"{len(samples) / total_s:>12,.0f} {statistics.median(samples) / 1000:>10.1f} "
            f"{p90 / 1000:>8.1f} {variant.admitted / len(samples):>9.0%}"
        )
    if unavailable is not None:
        lines.append(f"redis rows skipped: {unavailable}")
    lines.append(
        "decisions/s = decisions / summed decision time (no client overhead); "
        "redis: loopback round trip incl. EVALSHA."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=500)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=100, help="units per second per key")
    parser.add_argument("--redis-url", default=REDIS_TEST_URL)
    args = parser.parse_args()
    found, unavailable = run(args.blocks, args.block, args.keys, args.limit, args.redis_url)
    print(report(found, unavailable, limit=args.limit, key_count=args.keys))


if __name__ == "__main__":
    main()
