"""Fetching a remote JWKS, and how long the answer stays fresh (``Cache-Control``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_TTL_SECONDS = 300.0
MIN_TTL_SECONDS = 60.0
MAX_TTL_SECONDS = 86400.0
MAX_JWKS_BYTES = 512 * 1024


class JwksFetchError(Exception):
    """The remote JWKS could not be fetched or is not a usable key set."""

    def __init__(self, message: str, *, result: str = "error") -> None:
        super().__init__(message)
        self.result = result  # metrics label: "error" (transport/HTTP) or "invalid" (content)


@dataclass(frozen=True)
class FetchedJwks:
    document: Any
    max_age: float | None  # from Cache-Control, already reduced by Age; None if absent


Fetcher = Callable[[str], FetchedJwks]

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|=|$)", re.IGNORECASE)


def max_age_from_headers(cache_control: str | None, age: str | None = None) -> float | None:
    """Freshness lifetime per RFC 9111 §4.2.1: ``max-age`` minus ``Age``; 0 for no-cache."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return None
    max_age = float(match.group(1))
    try:
        max_age -= max(0.0, float(age)) if age else 0.0
    except ValueError:
        pass
    return max(0.0, max_age)


def bounded_ttl(
    max_age: float | None,
    *,
    default: float = DEFAULT_TTL_SECONDS,
    low: float = MIN_TTL_SECONDS,
    high: float = MAX_TTL_SECONDS,
) -> float:
    """The TTL to use: the server's ``max-age`` clamped to [low, high], else ``default``."""
    if max_age is None:
        return default
    return min(max(max_age, low), high)


class HttpJwksFetcher:
    """GET a JWKS with httpx: short timeouts, no redirects, bounded body, no env proxies.

    The gateway fetches keys from a known internal or IdP URL; following redirects or an
    ambient ``HTTP_PROXY`` would only widen what can answer in the IdP's name.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self._max_bytes = max_bytes
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=False,
                    trust_env=False,
                    headers={"Accept": "application/json"},
                )
            return self._client

    def __call__(self, uri: str) -> FetchedJwks:
        try:
            with self._http().stream("GET", uri) as response:
                if response.status_code != 200:
                    raise JwksFetchError(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise JwksFetchError("JWKS too large", result="invalid")
                headers = response.headers
        except httpx.HTTPError as exc:
            raise JwksFetchError(type(exc).__name__) from None
        try:
            document = json.loads(bytes(body))
        except ValueError:
            raise JwksFetchError("JWKS is not JSON", result="invalid") from None
        return FetchedJwks(
            document=document,
            max_age=max_age_from_headers(headers.get("cache-control"), headers.get("age")),
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
