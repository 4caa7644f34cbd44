"""Limiter state in Redis for the ``redis`` policy: exact across any number of gateway nodes.

Atomicity. Every decision is ONE round trip: a Lua script (``EVALSHA``; redis-py's
``register_script`` sends the source only once, and again only after a ``NOSCRIPT``) checks
every limit of the request and consumes units only if all of them admit. Redis runs a
script to completion before any other command, so check-and-consume is atomic across all
clients and nodes: concurrent requests can never both take the last unit, and a request
rejected by one limit does not use up another. The decisions are the same as
``LocalLimiter``'s (see ``sliding_window`` and ``gcra``) for the same request sequence.

Server time. The script reads the clock with ``TIME`` on the Redis server, so gateway nodes
with skewed clocks still agree on when a unit leaves the window; like the local store, time
never goes backwards for a key (a sliding-window request is never stamped before the newest
entry already logged). ``redis.replicate_commands()`` is called first where it exists:
Redis < 5 refuses writes after a non-deterministic command otherwise.

Key layout, one key per limit::

    {key_prefix}:{algorithm}:{scope}:{limit}:{window}:{burst}:{client-key}
    edge-rl:sliding_window:route-1:5:60s:-:203.0.113.9
    edge-rl:gcra:route-1:5:60s:2:#3b5d5c3712955042212316173ccf37be

``window`` is ``60s`` for whole seconds else microseconds (``500000us``); ``burst`` is the
GCRA burst, ``-`` for the sliding window (which has none). ``scope`` and ``client-key`` come
from configuration and from the request (a header value): unless one is 1-64 characters of
``[A-Za-z0-9._@/+=-]`` it is replaced by ``#`` + 32 hex of its SHA-256, so a client cannot
forge another key (``:`` and ``#`` never appear raw), inject a Cluster hash tag, or make
keys arbitrarily long. Keys expire when idle: a sliding-window log after one window with no
admission, a GCRA state when its schedule is free again (then it equals a fresh key).

* sliding window: a sorted set scored by the admission time in µs; each member is
  ``<cumulative units, 16 digits>:<cost>``, unique and in admission order, so the units in
  the window are ``cum(newest) - cum(oldest) + cost(oldest)`` from the two ends alone, and
  the time enough units leave is found by a binary search over ranks.
* GCRA: the theoretical arrival time as ``<base µs>:<k>`` meaning ``TAT = base + k·T``,
  so the sum of ``k`` emission intervals is computed once instead of accumulating a float
  rounding per request (which at today's µs timestamps could reject the last unit of a
  burst).

Failures and the breaker. Connect and read timeouts are both ``timeout_ms``, there are no
retries inside ``take`` (the pool waits at most ``timeout_ms`` for a free connection), and
any failure raises ``StoreUnavailable`` for the caller's failure mode. A circuit breaker per
Redis (``breaker.CircuitBreaker``) opens after ``breaker_threshold`` consecutive failures;
while open, ``take`` fails immediately without touching the network, and after
``breaker_reset_seconds`` one request probes Redis. So an outage costs at most one timeout
per breaker interval, not one per request. Redis Cluster is not supported (the keys of one
request's limits may live in different slots).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from edge_plugins.ratelimit.breaker import BreakerState, CircuitBreaker, Permit
from edge_plugins.ratelimit.errors import LimitConfigError, StoreUnavailable
from edge_plugins.ratelimit.limits import Algorithm, Decision, Limit, Outcome
from edge_plugins.ratelimit.redis_connections import ConnectionStack

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
_SAFE_PART = re.compile(r"[A-Za-z0-9._@/+=-]{1,64}")
_US = 1_000_000

# KEYS: one per limit. ARGV: algorithm, then per limit: limit, window_us, burst, cost.
# Returns {all_allowed, then per limit: allowed, remaining, reset_after_us, retry_after_us}
# (retry_after_us is -1 when admitted). Times are integers of µs, rounded UP so a client
# that waits them is admitted.
LUA_TAKE = r"""
if redis.replicate_commands then redis.replicate_commands() end
local algo = ARGV[1]
local n = #KEYS
local SLACK = 1e-9
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clock = now

local function fmt(x) return string.format('%d', x) end

local function cum_of(member)
  local cum, cost = string.match(member, '^(%d+):(%d+)$')
  return tonumber(cum), tonumber(cost)
end

local function sliding(key, limit, window, cost, consume)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - window))
  local used, base, last_cum, oldest = 0, 0, 0, now
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[1] then
    local cum, c = cum_of(first[1])
    base = cum - c
    oldest = tonumber(first[2])
    last_cum = cum_of(redis.call('ZRANGE', key, -1, -1)[1])
    used = last_cum - base
  end
  if used + cost <= limit then
    if consume then
      redis.call('ZADD', key, fmt(now), string.format('%016d:%d', last_cum + cost, cost))
      -- Idle keys vanish once their newest entry leaves the window.
      redis.call('PEXPIRE', key, fmt(math.max(1, math.ceil((now + window - clock) / 1000))))
    end
    return {1, limit - used - cost, oldest + window - now, -1}
  end
  -- The first entry (oldest first) by which `need` units will have left the window.
  local need = used + cost - limit
  local lo, hi = 0, redis.call('ZCARD', key) - 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cum_of(redis.call('ZRANGE', key, mid, mid)[1]) - base >= need then
      hi = mid
    else
      lo = mid + 1
    end
  end
  local stamp = tonumber(redis.call('ZRANGE', key, lo, lo, 'WITHSCORES')[2])
  return {0, limit - used, oldest + window - now, stamp + window - now}
end

local function gcra(key, limit, window, burst, cost, consume)
  -- TAT = base + k * T with T = window / limit; d = now - base is an exact integer.
  local base, k = now, 0
  local stored = redis.call('GET', key)
  if stored then
    local b, kk = string.match(stored, '^(%d+):(%d+)$')
    base, k = tonumber(b), tonumber(kk)
    if k * window / limit < now - base then base, k = now, 0 end
  end
  local d = now - base
  local function remaining(units)
    local r = math.floor(burst - units + d * limit / window + SLACK)
    return math.max(0, math.min(burst, r))
  end
  local new_k = k + cost
  local allow_in = (new_k - burst) * window / limit - d
  if allow_in <= SLACK * window / limit then
    local reset = new_k * window / limit - d
    if consume then
      local shift = math.floor(new_k / limit)
      redis.call('SET', key, fmt(base + shift * window) .. ':' .. fmt(new_k - shift * limit),
                 'PX', fmt(math.ceil(reset / 1000) + 1))
    end
    return {1, remaining(new_k), math.max(0, math.ceil(reset)), -1}
  end
  return {0, remaining(k), math.max(0, math.ceil(k * window / limit - d)),
          math.max(1, math.ceil(allow_in))}
end

local function decide(i, consume)
  local a = 2 + (i - 1) * 4
  local limit, window = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local burst, cost = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if algo == 'gcra' then return gcra(KEYS[i], limit, window, burst, cost, consume) end
  return sliding(KEYS[i], limit, window, cost, consume)
end

if algo == 'sliding_window' then
  -- Time never goes backwards for a log: stamp no earlier than its newest entry.
  for i = 1, n do
    local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    if newest[2] and tonumber(newest[2]) > now then now = tonumber(newest[2]) end
  end
end

local results, all = {}, 1
for i = 1, n do
  results[i] = decide(i, false)
  if results[i][1] == 0 then all = 0 end
end
if all == 1 then
  for i = 1, n do results[i] = decide(i, true) end
end
local reply = {all}
for i = 1, n do
  for j = 1, 4 do reply[#reply + 1] = results[i][j] end
end
return reply
"""


@dataclass(frozen=True)
class RedisSettings:
    """Where the shared counters live and how long we wait for them; hashable (registry key).

    ``url`` (``redis://``, ``rediss://``, ``unix://``) wins over host/port/db/username/
    password/ssl when set. The password is left out of ``repr`` so it never reaches a log.
    """

    url: str | None = None
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    timeout_ms: int = 50
    key_prefix: str = "edge-rl"
    breaker_threshold: int = 3
    breaker_reset_seconds: float = 5.0

    @property
    def address(self) -> str:
        """Where Redis is, for logs and metric labels: never the credentials."""
        if self.url:
            url = urlsplit(self.url)
            netloc = (url.hostname or "") + (f":{url.port}" if url.port else "")
            return urlunsplit((url.scheme, netloc, url.path, "", ""))
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"

    def __post_init__(self) -> None:
        if self.timeout_ms <= 0:
            raise LimitConfigError("redis timeout_ms must be > 0")
        if not self.key_prefix:
            raise LimitConfigError("redis key_prefix must not be empty")


def key_part(value: str) -> str:
    """``value`` if it is short and plain, else ``#`` + 32 hex of its SHA-256.

    ``#`` and ``:`` never appear in a raw part, so a hashed part cannot be forged by sending
    its hex as a raw value, and no value can add a ``:``-separated segment.
    """
    if _SAFE_PART.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return "#" + digest[:32]


def _window_us(limit: Limit) -> int:
    return max(1, round(limit.window_seconds * _US))


def _window_part(window_us: int) -> str:
    if window_us % _US == 0:
        return f"{window_us // _US}s"
    return f"{window_us}us"


def packed_command(*args: str | int) -> bytes:
    """A command as RESP, an array of bulk strings (https://redis.io/docs/latest/develop/
    reference/protocol-spec/): the bytes redis-py's serializer sends for the same str and
    int arguments (str as UTF-8, int as its decimal), without its per-argument type
    dispatch, which costs a decision more than the rest of building the command; anything
    else is refused."""
    parts = []
    for arg in args:
        if type(arg) is str:
            parts.append(arg.encode())
        elif type(arg) is int:  # not bool, not float: %d would turn 1.5 into 1 silently
            parts.append(b"%d" % arg)
        else:
            raise TypeError(f"a command argument is str or int, not {type(arg).__name__}")
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )


def _connection_pool(settings: RedisSettings) -> redis.ConnectionPool:
    timeout = settings.timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 0,
        # ``retry=None`` with no ``retry_on_error`` is redis-py's "no retry"; the Redis()
        # client's own default (3 retries with backoff) only applies without a pool.
        "retry": None,
        "retry_on_timeout": False,
        "max_connections": MAX_CONNECTIONS,
        # How long a request may wait for a free connection before counting as a failure.
        "timeout": timeout,
    }
    if "driver_info" in inspect.signature(redis.Connection.__init__).parameters:
        # No CLIENT SETINFO handshake: two fewer round trips on every new connection.
        options["driver_info"] = None
    if settings.url:
        return redis.BlockingConnectionPool.from_url(settings.url, **options)
    options.update(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username,
        password=settings.password,
    )
    if settings.ssl:
        options["connection_class"] = redis.SSLConnection
    return redis.BlockingConnectionPool(**options)


class RedisLimiter:
    """Decides requests against Redis: one atomic script per decision, behind a breaker."""

    def __init__(
        self,
        settings: RedisSettings,
        *,
        observe_latency: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.observe_latency = observe_latency
        self.breaker = CircuitBreaker(
            settings.breaker_threshold, settings.breaker_reset_seconds, clock=clock
        )
        self.client = redis.Redis(connection_pool=_connection_pool(settings))
        # Decisions check connections out of this stack, not out of the client's pool
        # (redis_connections); the pool serves the rare NOSCRIPT reload.
        self._connections = ConnectionStack(
            self.client.connection_pool, MAX_CONNECTIONS, settings.timeout_ms / 1000
        )
        self._script = self.client.register_script(LUA_TAKE)

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    @property
    def script_sha(self) -> str:
        return self._script.sha

    def keys(
        self,
        scope: str,
        key: str,
        limits: Sequence[Limit],
        *,
        algorithm: Algorithm | str = Algorithm.SLIDING_WINDOW,
    ) -> list[str]:
        """The Redis key of each limit for this scope and client key (see the layout above)."""
        algo = Algorithm(algorithm)
        prefix = f"{self.settings.key_prefix}:{algo}:{key_part(scope)}"
        client = key_part(key)
        return [
            f"{prefix}:{limit.limit}:{_window_part(_window_us(limit))}:"
            f"{limit.capacity if algo is Algorithm.GCRA else '-'}:{client}"
            for limit in limits
        ]

    def take(
        self,
        scope: str,
        key: str,
        limits: Sequence[Limit],
        *,
        algorithm: Algorithm | str = Algorithm.SLIDING_WINDOW,
        cost: int | None = None,
    ) -> Outcome:
        """Decide one request for ``key`` under every limit; consume only if all admit.

        Raises ``StoreUnavailable`` when the breaker is open or Redis fails or is too slow;
        configuration errors (``LimitConfigError``) are raised before touching Redis.
        """
        if not limits:
            raise LimitConfigError("at least one limit is required")
        algo = Algorithm(algorithm)
        args: list[str | int] = [str(algo)]
        for limit in limits:
            args += [limit.limit, _window_us(limit), limit.capacity, limit.units(cost, algo)]
        keys = self.keys(scope, key, limits, algorithm=algo)
        reply = self._run(keys, args)
        decisions = []
        for index, limit in enumerate(limits):
            allowed, remaining, reset_us, retry_us = (
                int(v) for v in reply[1 + 4 * index : 5 + 4 * index]
            )
            decisions.append(
                (
                    limit,
                    Decision(
                        bool(allowed),
                        limit.ceiling(algo),
                        remaining,
                        reset_us / _US,
                        None if allowed else retry_us / _US,
                    ),
                )
            )
        return Outcome(bool(reply[0]), tuple(decisions))

    def _run(self, keys: list[str], args: list[str | int]) -> list[int]:
        permit = self.breaker.allow()
        if permit is None:
            raise StoreUnavailable("breaker_open", "circuit breaker open")
        started = time.perf_counter()
        try:
            reply = self._evalsha(keys, args)
        except redis.TimeoutError as exc:
            self._failed(permit, started)
            raise StoreUnavailable("timeout", str(exc)) from exc
        except (redis.ConnectionError, OSError) as exc:
            self._failed(permit, started)
            raise StoreUnavailable("connection", str(exc)) from exc
        except redis.RedisError as exc:
            self._failed(permit, started)
            raise StoreUnavailable("error", str(exc)) from exc
        self._observe(time.perf_counter() - started)
        self.breaker.record_success(permit)
        if not isinstance(reply, list):  # the script returns a table of integers
            raise StoreUnavailable("error", f"script answered a {type(reply).__name__}")
        return reply

    def _evalsha(self, keys: list[str], args: list[str | int]) -> Any:
        """``EVALSHA`` on a connection of the limiter's own stack (redis_connections), without
        ``Redis.execute_command``'s layers (retry wrapper, per-command observability hooks,
        ``Script`` lookups) and without its serializer's per-argument dispatch
        (``packed_command``): a decision is one command on the request path, and each layer
        is paid again by a process that idled between requests (docs/plugin-runtime.md). A
        connection whose reply was not read whole is dropped, as redis-py's own failure
        callback does; ``NOSCRIPT`` (a restarted or flushed Redis) goes through ``Script``,
        which loads the source again.
        """
        conn = self._connections.acquire()
        try:
            # redis-py sends each item of a packed command with sendall: one item, one call.
            conn.send_packed_command(
                [packed_command("EVALSHA", self._script.sha, len(keys), *keys, *args)]
            )
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            pass  # a whole error reply: the connection stays in step
        except redis.ResponseError:
            raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._connections.release(conn)
        return self._script(keys=keys, args=args)

    def _failed(self, permit: Permit, started: float) -> None:
        self._observe(time.perf_counter() - started)
        if self.breaker.record_failure(permit):
            log.warning(
                "rate-limit store %s unavailable: circuit breaker open for %.1f s",
                self.settings.address,
                self.settings.breaker_reset_seconds,
            )

    def _observe(self, seconds: float) -> None:
        if self.observe_latency is None:
            return
        try:
            self.observe_latency(seconds)
        except Exception:
            # A metrics hook must never turn a decision into a failure; say so and go on.
            log.exception("observe_latency hook failed")

    def close(self) -> None:
        """Close the connections (tests, shutdown)."""
        self._connections.close()
        self.client.connection_pool.disconnect()


_REGISTRY: dict[RedisSettings, RedisLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def redis_limiter_for(
    settings: RedisSettings, *, observe_latency: Callable[[float], None] | None = None
) -> RedisLimiter:
    """The process's one limiter (pool and breaker) for these settings.

    Plugin instances come and go with every reconfiguration; sharing the limiter keeps one
    pool of connections and, above all, one breaker per Redis, so every instance sees that
    Redis is down after ``breaker_threshold`` failures in total. ``observe_latency`` is set
    by the first caller that passes one.
    """
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(settings)
        if limiter is None:
            limiter = _REGISTRY[settings] = RedisLimiter(settings, observe_latency=observe_latency)
        elif limiter.observe_latency is None and observe_latency is not None:
            limiter.observe_latency = observe_latency
        return limiter
