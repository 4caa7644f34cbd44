"""The gateway's public keys: a JWKS file or http(s) URL, per process.

Read on first use, again every :data:`JWKS_TTL_SECONDS`, and on an unknown ``kid`` at most
every :data:`UNKNOWN_KID_REFRESH_SECONDS` (a key rotation, docs/identity-assertion.md
*Keys*). PyJWT fetches a URL (``PyJWKClient``) and parses either (``PyJWKSet``); a failed
read keeps the keys already loaded: a flaky key source must not log everyone out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import jwt

from edge_identity.rules import key_in

log = logging.getLogger(__name__)

JWKS_TTL_SECONDS = 300.0
UNKNOWN_KID_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 2.0


class GatewayKeys:
    """``key_for(kid)``: a :data:`~edge_identity.rules.KeyLookup` over the JWKS at ``source``.

    ``source`` is a path or an ``http(s)://`` URL, or a callable giving one (read on every
    lookup, so a framework setting may change it; a new source starts from scratch).
    """

    def __init__(
        self, source: str | Callable[[], str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if callable(source):
            self._source_of = source
        else:
            fixed: str = source
            self._source_of = lambda: fixed
        self._clock = clock
        self._lock = threading.Lock()
        self._source: str | None = None
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._loaded_at = 0.0
        self._last_refresh_attempt = 0.0

    def key_for(self, kid: str) -> jwt.PyJWK | None:
        source = self._source_of()
        now = self._clock()
        with self._lock:
            if source != self._source:
                self._use(source)
            stale = now - self._loaded_at > JWKS_TTL_SECONDS
            unknown = key_in(self._keys, kid) is None and (
                now - self._last_refresh_attempt > UNKNOWN_KID_REFRESH_SECONDS
            )
            if stale or unknown:
                self._refresh(now)
            return key_in(self._keys, kid)

    def _use(self, source: str) -> None:
        self._source, self._keys, self._loaded_at = source, None, 0.0
        self._last_refresh_attempt = 0.0
        self._client = None
        if source.startswith(("http://", "https://")):
            # Our TTL and cool-down apply to files and URLs alike: no second cache here.
            self._client = jwt.PyJWKClient(
                source, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_SECONDS
            )

    def _refresh(self, now: float) -> None:
        self._last_refresh_attempt = now
        try:
            if self._client is not None:
                keys = self._client.get_jwk_set()
            else:
                with open(str(self._source), encoding="utf-8") as handle:
                    keys = jwt.PyJWKSet.from_json(handle.read())
        except (
            OSError,
            ValueError,
            jwt.PyJWKClientError,
            jwt.PyJWKError,
            jwt.PyJWKSetError,
        ) as exc:
            log.warning("gateway JWKS unavailable from %s: %s", self._source, type(exc).__name__)
            return
        self._keys, self._loaded_at = keys, now

    def clear(self) -> None:
        """Forget the keys and the source (tests, or to force a re-read)."""
        with self._lock:
            self._source, self._client, self._keys, self._loaded_at = None, None, None, 0.0
            self._last_refresh_attempt = 0.0
