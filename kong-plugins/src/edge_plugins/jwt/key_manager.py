"""The keys of one key source: inline keys plus a remote JWKS kept fresh.

One :class:`JwksManager` per key source and process (``state.runtime_for`` shares it
between all plugin instances), because what their users complain about in other gateways
is what a naive per-instance fetch does wrong:

* **no keys → 503, not 401.** When the key source is down and nothing usable is cached,
  :meth:`JwksManager.keys_for` raises :class:`KeysUnavailable`; the caller cannot decide and
  must not blame the client's token.
* **lazy first fetch, then kept fresh.** The first caller fetches (nothing happens at
  plugin start, before kong-pdk's first PDK call); afterwards a background worker (a
  thread, i.e. a greenlet under gevent's monkey patching) refreshes *ahead* of the TTL,
  which honours ``Cache-Control: max-age`` (bounded to [60 s, 24 h], 300 s without one).
* **single flight.** Concurrent callers that need a fetch wait for the one in progress.
* **stale-while-revalidate.** A failed refresh keeps the previous keys (logged, counted,
  ``edge_jwt_jwks_stale`` = 1) and retries with backoff; failures never drop good keys.
* **unknown ``kid``.** A key rotation at the IdP shows up as a token whose ``kid`` we do
  not know: one refetch, at most once per ``refetch_interval`` seconds (default 30) so a
  flood of bogus ``kid``\\s cannot turn the gateway into a DoS against the IdP; a ``kid``
  still unknown after a fresh fetch is negatively cached.

Parsing keys is :mod:`.keys`; fetching the document is :mod:`.fetch`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from edge_plugins.jwt import metrics
from edge_plugins.jwt.errors import KeysUnavailable
from edge_plugins.jwt.fetch import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    Fetcher,
    HttpJwksFetcher,
    JwksFetchError,
    bounded_ttl,
)
from edge_plugins.jwt.keys import InvalidKey, VerificationKey, keys_from_jwks

log = logging.getLogger(__name__)

MAX_STALE_SECONDS = 86400.0  # serve a stale key set for at most a day of IdP outage
REFRESH_AHEAD_RATIO = 0.8  # refresh when 80 % of the TTL has passed
DEFAULT_REFETCH_INTERVAL_SECONDS = 30.0
NEGATIVE_KID_TTL_SECONDS = 300.0
NEGATIVE_KID_MAX_ENTRIES = 4096
FAILURE_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


class _Flight:
    """One fetch in progress; followers wait on ``done`` and read ``ok``."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class JwksManager:
    """The keys of one key source (see the module docstring for the behaviour).

    ``clock`` is monotonic seconds (injectable for tests); ``background=False`` disables the
    refresh worker (tests then drive :meth:`refresh_if_due` themselves).
    """

    def __init__(
        self,
        *,
        jwks_uri: str | None = None,
        static: Sequence[VerificationKey] = (),
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        refetch_interval: float = DEFAULT_REFETCH_INTERVAL_SECONDS,
        default_ttl: float = DEFAULT_TTL_SECONDS,
        min_ttl: float = MIN_TTL_SECONDS,
        max_ttl: float = MAX_TTL_SECONDS,
        max_stale: float = MAX_STALE_SECONDS,
        negative_ttl: float = NEGATIVE_KID_TTL_SECONDS,
        wait_timeout: float = 5.0,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._static = tuple(static)
        self._fetcher = fetcher
        self._clock = clock
        self._background = background
        self._refetch_interval = refetch_interval
        self._default_ttl, self._min_ttl, self._max_ttl = default_ttl, min_ttl, max_ttl
        self._max_stale = max_stale
        self._negative_ttl = negative_ttl
        self._wait_timeout = wait_timeout

        self._lock = threading.Lock()
        self._by_kid: dict[str, tuple[VerificationKey, ...]] = {}
        self._kidless: tuple[VerificationKey, ...] = ()
        self._install(())
        self._loaded = False  # a remote fetch has succeeded at least once
        self._fetched_at = 0.0
        self._ttl = default_ttl
        self._failures = 0
        self._retry_at = 0.0
        self._last_failed = False
        self._last_unknown_kid_fetch: float | None = None
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._flight: _Flight | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    # -- lookups ---------------------------------------------------------------------------

    def keys_for(self, kid: str | None) -> Sequence[VerificationKey]:
        """Candidate keys for ``kid`` (``None``: keys that declared no kid).

        Raises :class:`KeysUnavailable` when no key can decide: the remote set was never
        fetched (or is older than ``max_stale``) and there are no inline keys, or ``kid`` is
        unknown and the refetch that might have found it failed.
        """
        if self.jwks_uri is None:
            return self._lookup(kid)
        self._ensure_loaded()
        found = self._lookup(kid)
        if found or kid is None:
            return found
        return self._unknown_kid(kid)

    def _lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        if kid is None:
            return self._kidless
        return self._by_kid.get(kid, ())

    def _ensure_loaded(self) -> None:
        now = self._clock()
        if self._loaded and now - self._fetched_at <= self._max_stale:
            if now >= self._fetched_at + self._ttl:
                metrics.set_jwks_stale(self.jwks_uri or "", True)
                self._wake.set()  # stale: serve what we have, refresh in the background
            self._start_worker()
            return
        if not self._fetch(reason="initial"):
            with self._lock:
                usable = self._loaded and self._clock() - self._fetched_at <= self._max_stale
            if not usable and not self._static:
                raise KeysUnavailable(retry_after=self._retry_after())
            if not usable:
                # Too stale to trust: fall back to the inline keys alone.
                self._install(())
        self._start_worker()

    def _unknown_kid(self, kid: str) -> tuple[VerificationKey, ...]:
        now = self._clock()
        with self._lock:
            until = self._negative.get(kid)
            if until is not None and now < until:
                self._negative.move_to_end(kid)
                return ()
            last = self._last_unknown_kid_fetch
            allowed = last is None or now - last >= self._refetch_interval
            if allowed:
                self._last_unknown_kid_fetch = now
            last_failed = self._last_failed
        if not allowed:
            if last_failed:
                # The key set may be out of date and we cannot check: do not blame the client.
                raise KeysUnavailable(retry_after=self._retry_after())
            # A kid we have not looked for yet, inside the refetch interval: it may be a key
            # the issuer has just rotated in (someone else's bogus kid spent the refetch).
            # We cannot decide now; a 401 would wrongly reject a valid new token.
            assert last is not None
            wait = max(1, math.ceil(last + self._refetch_interval - now))
            raise KeysUnavailable(retry_after=wait)
        log.info("unknown kid %r: refetching %s", kid[:64], self.jwks_uri)
        ok = self._fetch(reason="unknown_kid")
        found = self._lookup(kid)
        if found:
            return found
        if not ok:
            raise KeysUnavailable(retry_after=self._retry_after())
        with self._lock:
            self._negative[kid] = self._clock() + self._negative_ttl
            self._negative.move_to_end(kid)
            while len(self._negative) > NEGATIVE_KID_MAX_ENTRIES:
                self._negative.popitem(last=False)
        return ()

    def _retry_after(self) -> int:
        return max(1, round(self._retry_at - self._clock()))

    # -- fetching --------------------------------------------------------------------------

    def _fetch(self, *, reason: str) -> bool:
        """Fetch once for all concurrent callers; ``True`` when fresh keys are installed."""
        with self._lock:
            flight = self._flight
            leader = flight is None
            if leader:
                if self._clock() < self._retry_at:
                    return False  # backing off after a failure: do not hammer a down IdP
                flight = self._flight = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait(self._wait_timeout)
            return flight.ok
        ok = False
        try:
            ok = self._fetch_and_install(reason)
        finally:
            with self._lock:
                self._flight = None
            flight.ok = ok
            flight.done.set()
        return ok

    def _fetch_and_install(self, reason: str) -> bool:
        assert self.jwks_uri is not None
        try:
            fetched = self._fetcher_or_default()(self.jwks_uri)
            keys = keys_from_jwks(fetched.document)
            if not keys:
                raise JwksFetchError("JWKS has no usable key", result="invalid")
        except JwksFetchError as exc:
            self._record_failure(exc.result, str(exc), reason)
            return False
        except InvalidKey as exc:
            self._record_failure("invalid", str(exc), reason)
            return False
        now = self._clock()
        ttl = bounded_ttl(
            fetched.max_age, default=self._default_ttl, low=self._min_ttl, high=self._max_ttl
        )
        with self._lock:
            before = set(self._by_kid)
            self._install(keys)
            self._loaded = True
            self._fetched_at, self._ttl = now, ttl
            self._failures, self._retry_at, self._last_failed = 0, 0.0, False
            after = set(self._by_kid)
        metrics.record_jwks_fetch("ok")
        metrics.set_jwks_stale(self.jwks_uri, False)
        if before != after:
            log.info("JWKS %s (%s): kids %s, TTL %.0fs", self.jwks_uri, reason, sorted(after), ttl)
        return True

    def _record_failure(self, result: str, message: str, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self._failures += 1
            backoff = FAILURE_BACKOFF_SECONDS[min(self._failures, len(FAILURE_BACKOFF_SECONDS)) - 1]
            self._retry_at = now + backoff
            self._last_failed = True
            stale = self._loaded and now >= self._fetched_at + self._ttl
            loaded = self._loaded
        metrics.record_jwks_fetch(result)
        if stale:
            metrics.set_jwks_stale(self.jwks_uri or "", True)
        log.warning(
            "JWKS fetch from %s failed (%s, %s): %s; %s",
            self.jwks_uri,
            reason,
            result,
            message,
            "serving the cached keys" if loaded else "no cached keys",
        )

    def _fetcher_or_default(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = HttpJwksFetcher()
        return self._fetcher

    def _install(self, remote: Iterable[VerificationKey]) -> None:
        by_kid: dict[str, list[VerificationKey]] = {}
        kidless: list[VerificationKey] = []
        for key in (*self._static, *remote):
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
            if key.matches_kidless:
                kidless.append(key)
        # Swapped as whole objects: readers never see a half-built set, and need no lock.
        self._by_kid = {kid: tuple(keys) for kid, keys in by_kid.items()}
        self._kidless = tuple(kidless)

    # -- background refresh ----------------------------------------------------------------

    def next_refresh_at(self) -> float:
        """When the key set should be (re)fetched (monotonic seconds)."""
        with self._lock:
            if self._last_failed:
                return self._retry_at
            if not self._loaded:
                return float("-inf")  # never fetched: now
            return self._fetched_at + self._ttl * REFRESH_AHEAD_RATIO

    def refresh_if_due(self) -> bool:
        """Fetch now if never fetched, or if the refresh-ahead point (or retry time) passed."""
        if self.jwks_uri is None or self._clock() < self.next_refresh_at():
            return False
        return self._fetch(reason="refresh" if self._loaded else "prefetch")

    def start(self) -> None:
        """Fetch in the background now instead of on the first request (non-blocking)."""
        if self.jwks_uri is not None:
            self._start_worker()

    def _start_worker(self) -> None:
        if not self._background or self._worker is not None or self._stop.is_set():
            return
        with self._lock:
            if self._worker is not None:
                return
            self._worker = threading.Thread(target=self._run, name="edge-jwt-jwks", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.next_refresh_at() - self._clock()
            # Jitter keeps a fleet of gateways from refreshing in lockstep.
            delay = min(max(delay, 0.05), 60.0) * random.uniform(0.95, 1.0)  # noqa: S311
            if self._wake.wait(delay):
                self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.refresh_if_due()
            except Exception:  # a worker boundary: a dead worker would never refresh again
                log.exception("JWKS refresh worker error (continuing)")

    def close(self) -> None:
        """Stop the refresh worker and close the HTTP client."""
        self._stop.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2)
        fetcher = self._fetcher
        if isinstance(fetcher, HttpJwksFetcher):
            fetcher.close()
