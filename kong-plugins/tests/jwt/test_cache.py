"""VerifiedTokenCache: bounded LRU keyed by the token's hash, entries expire at exp."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY

from edge_plugins.jwt.cache import VerifiedTokenCache, token_digest


def _hits() -> float:
    return REGISTRY.get_sample_value("edge_jwt_cache_hits_total", {"cache": "token"}) or 0.0


def test_keyed_by_sha256_and_expiring_at_exp() -> None:
    cache = VerifiedTokenCache()
    digest = token_digest("a.b.c")
    assert len(digest) == 32 and digest != token_digest("a.b.d")
    cache.put(digest, {"sub": "u1", "exp": 200}, expires_at=200, now=100)
    hits = _hits()
    assert cache.get(digest, 199.9) == {"sub": "u1", "exp": 200}
    assert _hits() == hits + 1
    assert cache.get(digest, 200) is None
    assert len(cache) == 0, "an expired entry is dropped"


def test_already_expired_tokens_are_not_stored() -> None:
    cache = VerifiedTokenCache()
    cache.put(token_digest("t"), {"sub": "u"}, expires_at=100, now=100)
    assert len(cache) == 0


def test_bounded_lru() -> None:
    cache = VerifiedTokenCache(max_entries=3)
    for name in "abc":
        cache.put(token_digest(name), {"sub": name}, expires_at=1000, now=0)
    assert cache.get(token_digest("a"), 1) is not None  # a is now most recent
    cache.put(token_digest("d"), {"sub": "d"}, expires_at=1000, now=0)
    assert len(cache) == 3
    assert cache.get(token_digest("b"), 1) is None, "least recently used is evicted"
    assert cache.get(token_digest("a"), 1) is not None


def test_cached_claims_are_read_only() -> None:
    cache = VerifiedTokenCache()
    cache.put(token_digest("t"), {"sub": "u"}, expires_at=1000, now=0)
    claims = cache.get(token_digest("t"), 1)
    assert claims is not None
    with pytest.raises(TypeError):
        claims["sub"] = "admin"  # type: ignore[index]
    assert cache.get(token_digest("t"), 1) == {"sub": "u"}


def test_thread_safe() -> None:
    cache = VerifiedTokenCache(max_entries=100)

    def work(offset: int) -> None:
        for i in range(2000):
            key = token_digest(f"{offset}-{i % 150}")
            cache.put(key, {"i": i}, expires_at=10_000, now=0)
            cache.get(key, 1)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 100
