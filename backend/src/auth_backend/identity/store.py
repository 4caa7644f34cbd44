"""What a valid signature cannot tell: was the assertion used before, was its token revoked.

Both answers live in Redis (docs/identity-assertion.md), asked in one round trip per request:

* ``SET <IDENTITY_ASSERTION_KEY_PREFIX>:seen:<assertion_id> 1 NX EX <ttl>``: the first
  request naming an assertion id claims it, a replay finds it taken. The key outlives the
  assertion (its ``exp`` plus the verification leeway), so it cannot be forgotten while the
  assertion would still verify;
* ``EXISTS <REVOCATIONS_KEY_PREFIX>:jti:<jti>``: the key ``tokens.revocation`` writes when a
  session ends — the one edge-jwt reads (backend/docs/revocation.md). A captured assertion
  names a token that logout may since have revoked. The database is asked too (one indexed
  read): a revocation made while Redis was down has no key. The answer is kept in this
  process for at most :data:`REVOCATION_CACHE_SECONDS`, so a revocation takes effect within
  that.

Redis unreachable (or slower than ``REVOCATIONS_REDIS_TIMEOUT_MS``) raises
:class:`IdentityStoreUnavailable`: neither question has an answer, and the caller treats
the request as anonymous (fail closed). Admitting it would reopen the replay the checks
exist to stop, for as long as an outage lasts — or as long as an attacker can make one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import redis
from django.conf import settings

from auth_backend.tokens import revocation
from auth_backend.tokens.selectors import access_token_record

REVOCATION_CACHE_SECONDS = 1.0
_MAX_CACHED_TOKENS = 10_000


class Admission(StrEnum):
    ADMITTED = "admitted"
    REVOKED = "revoked"  # the user token was revoked (logout, reuse, reset, …)
    REPLAYED = "replayed"  # this assertion id was seen before


class IdentityStoreUnavailable(Exception):
    """Redis did not answer: whether the assertion is fresh and its token live is unknown."""


class IdentityStore(Protocol):
    def admit(self, *, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
        """Claim ``assertion_id`` for this request unless ``token_id`` is revoked."""
        ...


class _RevocationCache:
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


def revoked_in_database(token_id: str) -> bool:
    """Whether the database, the source of truth (backend/docs/revocation.md), has revoked the
    user token: the token itself or its session. A revocation made while Redis was down never
    reached its Redis key; without this answer the token would open the backend again once
    Redis is back. A token without a record (purged after expiry) is not revoked here."""
    record = access_token_record(token_id)
    return record is not None and (record.revoked_at is not None or record.family.is_revoked)


class RedisIdentityStore:
    """The production store: ``REDIS_URL`` through the revocation publisher's client."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._revocations = _RevocationCache(REVOCATION_CACHE_SECONDS, _MAX_CACHED_TOKENS, clock)

    def admit(self, *, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
        seen_key = f"{settings.IDENTITY_ASSERTION_KEY_PREFIX}:seen:{assertion_id}"
        revoked = self._revocations.get(token_id)
        if revoked:
            return Admission.REVOKED
        exists = 0
        try:
            client = revocation.redis_client()
            if revoked is None:
                # One round trip for both questions; a revoked token's id is claimed too,
                # which costs nothing: the assertion is refused either way.
                pipe = client.pipeline(transaction=False)
                pipe.exists(revocation.revoked_jti_key(token_id))
                pipe.set(seen_key, "1", nx=True, ex=ttl_seconds)
                exists, first_use = pipe.execute()
            else:
                first_use = client.set(seen_key, "1", nx=True, ex=ttl_seconds)
        except (redis.RedisError, OSError) as exc:
            raise IdentityStoreUnavailable(type(exc).__name__) from exc
        if revoked is None:
            revoked = bool(exists) or revoked_in_database(token_id)
            self._revocations.put(token_id, revoked)
        if revoked:
            return Admission.REVOKED
        return Admission.ADMITTED if first_use else Admission.REPLAYED

    def clear(self) -> None:
        """Forget cached revocation answers (tests)."""
        self._revocations.clear()


identity_store: IdentityStore = RedisIdentityStore()


def admit(*, assertion_id: str, token_id: str, ttl_seconds: int) -> Admission:
    """:meth:`IdentityStore.admit` of the configured store; raises
    :class:`IdentityStoreUnavailable` when it cannot answer."""
    return identity_store.admit(
        assertion_id=assertion_id, token_id=token_id, ttl_seconds=ttl_seconds
    )
