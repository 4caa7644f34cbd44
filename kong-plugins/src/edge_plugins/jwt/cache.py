"""Verified tokens, so a token seen again costs a hash and a dict lookup instead of crypto.

Clients reuse their access token for every request until it expires, so most requests
carry a token the process has already verified. The cache remembers the verified claims,
keyed by SHA-256 of the token (the token itself is a bearer secret and is not kept), until
the token's ``exp``. Only the *validation* result is cached: revocation and the route's
scope/role policy are re-checked on every request, so logout and per-route rules take
effect immediately.

A cache instance is tied to one validation configuration (issuer, audiences, algorithms,
keys …; see ``state.runtime_for``): a token verified under one route's rules is never
reused under another's. Bounded (LRU) so a flood of distinct valid tokens cannot grow
memory without limit; thread-safe (a greenlet-aware lock under gevent).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from edge_plugins.jwt import metrics

DEFAULT_MAX_ENTRIES = 10_000


def token_digest(token: str) -> bytes:
    """The cache key of a token: SHA-256 of its bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokenCache:
    """Bounded LRU of verified claims, each entry expiring at its token's ``exp``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Mapping[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: bytes, now: float) -> Mapping[str, Any] | None:
        """The verified claims for this token digest, or ``None`` (absent or expired)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            expires_at, claims = entry
            if now >= expires_at:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
        metrics.record_cache_hit("token")
        return claims

    def put(self, digest: bytes, claims: Mapping[str, Any], expires_at: float, now: float) -> None:
        """Remember verified claims until ``expires_at`` (the token's ``exp``)."""
        if expires_at <= now:
            return
        frozen = MappingProxyType(dict(claims))
        with self._lock:
            self._entries[digest] = (expires_at, frozen)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
