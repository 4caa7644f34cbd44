"""JwksManager: TTL from Cache-Control, refresh ahead, single flight, stale-while-revalidate,
unknown-kid refetch with rate limit and negative cache, KeysUnavailable.

Timing logic runs on a fake clock with the background worker off; a few tests use a real
HTTP server on 127.0.0.1 and real threads (single flight, the background refresh)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from edge_plugins.jwt.errors import KeysUnavailable
from edge_plugins.jwt.fetch import (
    FetchedJwks,
    HttpJwksFetcher,
    JwksFetchError,
    bounded_ttl,
    max_age_from_headers,
)
from edge_plugins.jwt.key_manager import JwksManager
from edge_plugins.jwt.keys import InvalidKey, key_from_jwk, static_keys
from tests.support.edge_jwt import FakeClock, JwksEndpoint, RsaKey, jwks_of, new_rsa_key

URI = "https://idp.test/jwks.json"


class FakeFetcher:
    """Answers with ``document`` (or raises) and counts calls."""

    def __init__(self, document: Any, max_age: float | None = 300.0) -> None:
        self.document = document
        self.max_age = max_age
        self.fail = False
        self.calls = 0

    def __call__(self, uri: str) -> FetchedJwks:
        self.calls += 1
        if self.fail:
            raise JwksFetchError("HTTP 503")
        return FetchedJwks(self.document, self.max_age)


def _manager(fetcher: Callable[[str], FetchedJwks], clock: FakeClock, **kwargs: Any) -> JwksManager:
    return JwksManager(jwks_uri=URI, fetcher=fetcher, clock=clock, background=False, **kwargs)


def _fetches(result: str) -> float:
    return REGISTRY.get_sample_value("edge_jwt_jwks_fetches_total", {"result": result}) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- parsing ------------------------------------------------------------------------------


def test_keys_are_parsed_once_with_their_algorithms(rsa_key: RsaKey) -> None:
    (key,) = static_keys(jwks_of(rsa_key))
    assert key.kid == rsa_key.kid and key.algorithms == {"RS256"}
    unpinned = {k: v for k, v in rsa_key.jwk.items() if k != "alg"}
    assert key_from_jwk(unpinned).algorithms == {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
    }


@pytest.mark.parametrize(
    "jwk, message",
    [
        ({"kty": "RSA", "use": "enc", "n": "x", "e": "AQAB"}, "use"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "inline"),
        ({"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "alg": "RS256"}, "does not fit"),
        ({"kty": "OKP", "crv": "X25519", "x": "x"}, "curve"),
        ({"kty": "XYZ"}, "unsupported key type"),
    ],
)
def test_unusable_remote_keys_are_refused(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        key_from_jwk(jwk)


def test_a_remote_set_with_a_bad_key_keeps_the_good_ones(rsa_key: RsaKey, clock: FakeClock) -> None:
    document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "secret"}, rsa_key.jwk]}
    manager = _manager(FakeFetcher(document), clock)
    assert manager.keys_for(rsa_key.kid)
    assert manager.keys_for("secret") == ()


@pytest.mark.parametrize(
    "cache_control, age, expected",
    [
        (None, None, None),
        ("public, max-age=300", None, 300.0),
        ("max-age=600, public", "100", 500.0),
        ('max-age="120"', None, 120.0),
        ("no-cache", None, 0.0),
        ("public, no-store", None, 0.0),
        ("public", None, None),
        ("s-maxage=50", None, None),
    ],
)
def test_max_age_from_cache_control(
    cache_control: str | None, age: str | None, expected: float | None
) -> None:
    assert max_age_from_headers(cache_control, age) == expected


@pytest.mark.parametrize(
    "max_age, expected", [(None, 300.0), (120.0, 120.0), (5.0, 60.0), (0.0, 60.0), (10**7, 86400.0)]
)
def test_ttl_is_bounded(max_age: float | None, expected: float) -> None:
    assert bounded_ttl(max_age) == expected


# --- freshness ----------------------------------------------------------------------------


def test_fetched_lazily_on_first_use(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock)
    assert fetcher.calls == 0
    assert manager.keys_for(rsa_key.kid)[0].kid == rsa_key.kid
    assert manager.keys_for(rsa_key.kid)
    assert fetcher.calls == 1


@pytest.mark.parametrize(
    "max_age, ttl", [(120.0, 120.0), (None, 300.0), (5.0, 60.0), (10**6, 86400.0)]
)
def test_refresh_ahead_follows_cache_control(
    rsa_key: RsaKey, clock: FakeClock, max_age: float | None, ttl: float
) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key), max_age=max_age)
    manager = _manager(fetcher, clock)
    manager.keys_for(rsa_key.kid)
    assert manager.next_refresh_at() == pytest.approx(clock.now + 0.8 * ttl)
    clock.advance(0.8 * ttl - 1)
    assert manager.refresh_if_due() is False
    clock.advance(1)
    assert manager.refresh_if_due() is True
    assert fetcher.calls == 2


def test_stale_while_revalidate(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key), max_age=300)
    manager = _manager(fetcher, clock)
    manager.keys_for(rsa_key.kid)
    fetcher.fail = True
    errors = _fetches("error")
    clock.advance(400)  # past the TTL: the IdP is down
    assert manager.refresh_if_due() is False
    assert _fetches("error") == errors + 1
    assert manager.keys_for(rsa_key.kid), "cached keys keep working"
    assert REGISTRY.get_sample_value("edge_jwt_jwks_stale", {"source": URI}) == 1.0
    # Retries back off instead of hammering the IdP.
    assert manager.refresh_if_due() is False
    assert fetcher.calls == 2
    clock.advance(1)
    fetcher.fail = False
    assert manager.refresh_if_due() is True
    assert REGISTRY.get_sample_value("edge_jwt_jwks_stale", {"source": URI}) == 0.0


def test_a_stale_set_expires_after_max_stale(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock, max_stale=3600)
    manager.keys_for(rsa_key.kid)
    fetcher.fail = True
    clock.advance(3601)
    with pytest.raises(KeysUnavailable):
        manager.keys_for(rsa_key.kid)


def test_no_keys_at_all_raises_keys_unavailable(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    fetcher.fail = True
    manager = _manager(fetcher, clock)
    with pytest.raises(KeysUnavailable) as info:
        manager.keys_for(rsa_key.kid)
    assert info.value.retry_after >= 1
    # Within the backoff no new fetch is tried: callers get KeysUnavailable at once.
    with pytest.raises(KeysUnavailable):
        manager.keys_for(rsa_key.kid)
    assert fetcher.calls == 1
    clock.advance(1)
    fetcher.fail = False
    assert manager.keys_for(rsa_key.kid)


def test_invalid_documents_count_as_failures(clock: FakeClock) -> None:
    invalid = _fetches("invalid")
    for document in ({"keys": []}, {"nope": 1}, [1, 2]):
        manager = _manager(FakeFetcher(document), clock)
        with pytest.raises(KeysUnavailable):
            manager.keys_for("k")
    assert _fetches("invalid") == invalid + 3


def test_inline_keys_still_decide_when_the_remote_set_is_down(
    rsa_key: RsaKey, other_rsa_key: RsaKey, clock: FakeClock
) -> None:
    fetcher = FakeFetcher(jwks_of(other_rsa_key))
    fetcher.fail = True
    manager = _manager(fetcher, clock, static=static_keys(jwks_of(rsa_key)))
    assert manager.keys_for(rsa_key.kid)


# --- unknown kid --------------------------------------------------------------------------


def test_unknown_kid_one_refetch_then_negative_cache(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock, refetch_interval=30)
    manager.keys_for(rsa_key.kid)
    assert fetcher.calls == 1
    assert manager.keys_for("bogus") == ()
    assert fetcher.calls == 2, "one refetch for an unknown kid"
    for _ in range(5):
        assert manager.keys_for("bogus") == ()
    clock.advance(60)
    assert manager.keys_for("bogus") == ()
    assert fetcher.calls == 2, "the bogus kid is negatively cached"


def test_unknown_kid_refetch_is_rate_limited(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock, refetch_interval=30)
    manager.keys_for(rsa_key.kid)
    assert manager.keys_for("bogus-0") == ()  # refetched, not found: negatively cached
    for i in range(1, 20):  # a flood of different bogus kids inside the interval
        with pytest.raises(KeysUnavailable) as raised:
            manager.keys_for(f"bogus-{i}")
        assert 1 <= raised.value.retry_after <= 30
    assert manager.keys_for("bogus-0") == ()  # still a plain "unknown kid", no refetch
    assert fetcher.calls == 2
    clock.advance(30)
    manager.keys_for("bogus-x")
    assert fetcher.calls == 3


def test_rotated_kid_inside_the_refetch_interval_is_not_rejected(
    rsa_key: RsaKey, clock: FakeClock
) -> None:
    """A bogus kid spent the refetch just before the issuer rotated: the new key's tokens
    get 503 + Retry-After (cannot decide yet), never a 401, and pass after the interval."""
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock, refetch_interval=30)
    manager.keys_for(rsa_key.kid)
    manager.keys_for("bogus")
    rotated = new_rsa_key()
    fetcher.document = jwks_of(rotated, rsa_key)
    clock.advance(10)
    with pytest.raises(KeysUnavailable) as raised:
        manager.keys_for(rotated.kid)
    assert raised.value.retry_after == 20
    clock.advance(20)
    assert manager.keys_for(rotated.kid)[0].kid == rotated.kid


def test_rotated_key_is_found_by_the_unknown_kid_refetch(rsa_key: RsaKey, clock: FakeClock) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock)
    manager.keys_for(rsa_key.kid)
    rotated = new_rsa_key()
    fetcher.document = jwks_of(rotated, rsa_key)  # current + previous, like the backend
    assert manager.keys_for(rotated.kid)[0].kid == rotated.kid
    assert manager.keys_for(rsa_key.kid)


def test_unknown_kid_while_the_idp_is_down_cannot_be_decided(
    rsa_key: RsaKey, clock: FakeClock
) -> None:
    fetcher = FakeFetcher(jwks_of(rsa_key))
    manager = _manager(fetcher, clock)
    manager.keys_for(rsa_key.kid)
    fetcher.fail = True
    with pytest.raises(KeysUnavailable):
        manager.keys_for("maybe-new")
    with pytest.raises(KeysUnavailable):  # rate limited, and the last fetch failed
        manager.keys_for("maybe-newer")
    assert manager.keys_for(rsa_key.kid), "known kids keep working"


# --- real HTTP and threads ----------------------------------------------------------------


@pytest.fixture
def http_manager(jwks_endpoint: JwksEndpoint) -> Iterator[JwksManager]:
    manager = JwksManager(jwks_uri=jwks_endpoint.url, background=False)
    yield manager
    manager.close()


def test_fetch_over_http_honours_cache_control(
    jwks_endpoint: JwksEndpoint, rsa_key: RsaKey
) -> None:
    jwks_endpoint.cache_control = "public, max-age=120"
    fetched = HttpJwksFetcher()(jwks_endpoint.url)
    assert fetched.max_age == 120.0
    assert fetched.document == jwks_of(rsa_key)


def test_http_errors_are_fetch_errors(jwks_endpoint: JwksEndpoint) -> None:
    jwks_endpoint.status = 500
    with pytest.raises(JwksFetchError, match="500"):
        HttpJwksFetcher()(jwks_endpoint.url)
    with pytest.raises(JwksFetchError):
        HttpJwksFetcher(connect_timeout=0.5)("http://127.0.0.1:9/jwks.json")
    jwks_endpoint.status = 200
    with pytest.raises(JwksFetchError, match="too large"):
        HttpJwksFetcher(max_bytes=10)(jwks_endpoint.url)


def test_http_read_timeout(jwks_endpoint: JwksEndpoint) -> None:
    # The answer comes 15 times later than the read timeout: a loaded machine cannot make the
    # fetch succeed, and the failure must be the read timeout itself (not how long it took).
    jwks_endpoint.delay = 3.0
    fetcher = HttpJwksFetcher(read_timeout=0.2)
    with pytest.raises(JwksFetchError, match=r"^ReadTimeout$"):
        fetcher(jwks_endpoint.url)
    assert fetcher._http().timeout.read == 0.2


def test_single_flight_concurrent_first_calls(
    jwks_endpoint: JwksEndpoint, rsa_key: RsaKey, http_manager: JwksManager
) -> None:
    jwks_endpoint.delay = 0.3
    barrier = threading.Barrier(20)
    results: list[Any] = []

    def call() -> None:
        barrier.wait()
        results.append(http_manager.keys_for(rsa_key.kid))

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert jwks_endpoint.count() == 1
    assert len(results) == 20 and all(r and r[0].kid == rsa_key.kid for r in results)


def test_stale_while_revalidate_over_http(jwks_endpoint: JwksEndpoint, rsa_key: RsaKey) -> None:
    clock = FakeClock()
    manager = JwksManager(jwks_uri=jwks_endpoint.url, clock=clock, background=False)
    manager.keys_for(rsa_key.kid)
    jwks_endpoint.status = 503
    clock.advance(301)
    assert manager.refresh_if_due() is False
    assert manager.keys_for(rsa_key.kid)
    assert jwks_endpoint.count() == 2
    manager.close()


def test_background_worker_refreshes_ahead_of_expiry(
    jwks_endpoint: JwksEndpoint, rsa_key: RsaKey
) -> None:
    jwks_endpoint.cache_control = "max-age=0"
    manager = JwksManager(jwks_uri=jwks_endpoint.url, min_ttl=0.2)
    try:
        manager.keys_for(rsa_key.kid)
        deadline = time.monotonic() + 5
        while jwks_endpoint.count() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jwks_endpoint.count() >= 3, "refreshed in the background without requests"
    finally:
        manager.close()
    settled = jwks_endpoint.count()
    time.sleep(0.4)
    assert jwks_endpoint.count() == settled, "close() stops the worker"
