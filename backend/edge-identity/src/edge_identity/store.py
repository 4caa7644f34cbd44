"""What a valid signature cannot tell: was the assertion used before, was its token revoked.

Both answers live in a Redis all instances of the service share (docs/identity-assertion.md,
rules 6 and 7), asked in one round trip per request:

* ``SET <seen key of assertion_id> 1 NX EX <ttl>``: the first request naming an assertion id
  claims it, a replay finds it taken. The key outlives the assertion (its ``exp`` plus the
  verification leeway), so it cannot be forgotten while the assertion would still verify;
* ``EXISTS <revoked key of jti>``: the key the token issuer writes when a session ends
  (``auth.revoked:jti:<jti>`` for auth-backend, the key edge-jwt reads too). The answer is
  kept in this process for at most ``revocation_cache_seconds`` (1 s), so a revocation takes
  effect within that. ``also_revoked`` adds a check of the service's own (auth-backend asks
  its database, the source of truth).

A store that cannot answer raises :class:`StoreUnavailable`: the verifier then treats the
request as anonymous (fail closed). Admitting it would reopen the replay the checks exist to
stop, for as long as an outage lasts — or as long as an attacker can make one.

Any object with :meth:`AssertionStore.admit` is a store; :class:`RedisAssertionStore` is
the production one, over a redis-py client (the ``redis`` extra) or anything with the same
``pipeline``/``set`` methods.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

REVOCATION_CACHE_SECONDS = 1.0
MAX_CACHED_TOKENS = 10_000
DEFAULT_REVOKED_KEY_PREFIX = "auth.revoked"  # auth-backend's REVOCATIONS_KEY_PREFIX
REDIS_TIMEOUT_SECONDS = 0.5


class Admission(StrEnum):
    ADMITTED = "admitted"
    REVOKED = "revoked"  # the user token was revoked (logout, reuse, reset, …)
    REPLAYED = "replayed"  # this assertion id was seen before


class StoreUnavailable(Exception):
    """The store did not answer: whether the assertion is fresh and its token live is
    unknown."""


class AssertionStore(Protocol):
    def admit(self, *, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
        """Claim ``assertion_id`` for this request unless ``token_id`` is revoked; raise
        :class:`StoreUnavailable` when that cannot be answered."""
        ...


class RedisClient(Protocol):
    """The part of ``redis.Redis`` the store uses."""

    def pipeline(self, transaction: bool = ...) -> Any: ...
    def set(self, name: str, value: str, *, nx: bool, ex: int) -> Any: ...


class RevocationCache:
    """Revoked-or-not per user token id, each answer kept at most ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, bool]] = OrderedDict()

    def get(self, token_id: str) -> bool | None:
        with self._lock:
            entry = self._entries.get(token_id)
            if entry is None or self._clock() >= entry[0]:
                return None
            return entry[1]

    def put(self, token_id: str, revoked: bool) -> None:
        with self._lock:
            self._entries[token_id] = (self._clock() + self._ttl, revoked)
            self._entries.move_to_end(token_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        import redis
    except ImportError:  # a client of another library: its errors must be OSError or named
        return (OSError,)
    return (redis.RedisError, OSError)


class RedisAssertionStore:
    """Once-only ids and revocation keys in Redis, one round trip per request.

    ``client`` gives the Redis client to use (called per request, so a framework may swap
    it); ``seen_key(assertion_id)`` and ``revoked_key(jti)`` name the keys. ``errors`` are
    the exceptions that mean "no answer" (default: ``redis.RedisError`` and ``OSError``).
    """

    def __init__(
        self,
        client: Callable[[], RedisClient],
        *,
        seen_key: Callable[[str], str],
        revoked_key: Callable[[str], str],
        also_revoked: Callable[[str], bool] | None = None,
        errors: tuple[type[BaseException], ...] | None = None,
        revocation_cache_seconds: float = REVOCATION_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._seen_key = seen_key
        self._revoked_key = revoked_key
        self._also_revoked = also_revoked
        self._errors = _redis_errors() if errors is None else errors
        self._revocations = RevocationCache(revocation_cache_seconds, MAX_CACHED_TOKENS, clock)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        seen_key_prefix: str,
        revoked_key_prefix: str = DEFAULT_REVOKED_KEY_PREFIX,
        timeout_seconds: float = REDIS_TIMEOUT_SECONDS,
    ) -> RedisAssertionStore:
        """A store on the Redis at ``url`` (needs the ``redis`` extra): ids claimed under
        ``<seen_key_prefix>:seen:<assertion_id>``, revocations read from
        ``<revoked_key_prefix>:jti:<jti>``."""
        try:
            import redis
        except ImportError:
            raise ImportError(
                "RedisAssertionStore.from_url needs redis: pip install 'edge-identity[redis]'"
            ) from None

        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        return cls(
            lambda: client,
            seen_key=lambda assertion_id: f"{seen_key_prefix}:seen:{assertion_id}",
            revoked_key=lambda token_id: f"{revoked_key_prefix}:jti:{token_id}",
        )

    def admit(self, *, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
        seen_key = self._seen_key(assertion_id)
        revoked = self._revocations.get(token_id)
        if revoked:
            return Admission.REVOKED
        exists = 0
        try:
            client = self._client()
            if revoked is None:
                # One round trip for both questions; a revoked token's id is claimed too,
                # which costs nothing: the assertion is refused either way.
                pipe = client.pipeline(transaction=False)
                pipe.exists(self._revoked_key(token_id))
                pipe.set(seen_key, "1", nx=True, ex=ttl_seconds)
                exists, first_use = pipe.execute()
            else:
                first_use = client.set(seen_key, "1", nx=True, ex=ttl_seconds)
        except self._errors as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        if revoked is None:
            revoked = bool(exists) or (
                self._also_revoked is not None and self._also_revoked(token_id)
            )
            self._revocations.put(token_id, revoked)
        if revoked:
            return Admission.REVOKED
        return Admission.ADMITTED if first_use else Admission.REPLAYED

    def clear(self) -> None:
        """Forget cached revocation answers (tests)."""
        self._revocations.clear()
