"""Process-wide runtime shared by every edge-jwt plugin instance of the plugin server.

Kong creates one plugin instance per worker and per route/config, but keys, revocations,
the signing key and the verified-token cache belong to the *process*: N workers must not
fetch the same JWKS N times, nor keep N revocation subscriptions. :func:`runtime_for`
therefore hands out shared components keyed by exactly the config fields they depend on:

* the JWKS manager by key source (``jwks_uri``, inline ``jwks``, PEM keys, refetch rate);
* the revocation subscriber by Redis URL, channel and key prefix (or a null view);
* the assertion signer by key file, issuer and TTL;
* the verified-token cache by everything validation depends on, so a token verified under
  one route's issuer/audience/algorithm rules is never reused under another's.

Nothing is started here: no I/O and no thread happens before kong-pdk's first PDK call
(an error or a block there would stall the whole server, see ``edge_plugins.guard``).
Each component starts itself on first use inside ``decide`` — the JWKS is fetched by the
first request that needs it, the revocation subscriber is spawned by the first revocation
check. Under the plugin server's gevent monkey patching those background workers are
greenlets; :meth:`Runtime.start` kicks them early if the caller wants to.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_plugins.jwt.assertion import AssertionSigner
from edge_plugins.jwt.cache import VerifiedTokenCache
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import SigningKeyError
from edge_plugins.jwt.key_manager import JwksManager
from edge_plugins.jwt.keys import static_keys
from edge_plugins.jwt.revocation import NullRevocations, RedisRevocations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """The shared pieces ``decide`` needs, for one configuration."""

    keys: JwksManager
    revocations: RedisRevocations | NullRevocations
    signer: AssertionSigner
    cache: VerifiedTokenCache

    def start(self) -> None:
        """Start the background work now instead of on first use (non-blocking).

        Spawns the JWKS worker (which prefetches the key set) and the revocation
        subscriber, and reads the signing key; failures are logged, and the request that
        needs the component gets the usual verdict (503 under ``closed``).
        """
        self.keys.start()
        self.revocations.start()
        try:
            self.signer.load()
        except SigningKeyError as exc:
            log.error("assertion signing key not loaded: %s", exc)


_lock = threading.Lock()
_runtimes: dict[tuple[Any, ...], Runtime] = {}
_keys: dict[tuple[Any, ...], JwksManager] = {}
_revocations: dict[tuple[Any, ...], RedisRevocations] = {}
_signers: dict[tuple[Any, ...], AssertionSigner] = {}
_caches: dict[tuple[Any, ...], VerifiedTokenCache] = {}
_NULL_REVOCATIONS = NullRevocations()


def _keys_key(config: JwtConfig) -> tuple[Any, ...]:
    return (
        config.jwks_uri,
        config.jwks_json,
        config.public_keys_pem,
        config.jwks_refetch_interval_seconds,
    )


def _validation_key(config: JwtConfig) -> tuple[Any, ...]:
    return (
        _keys_key(config),
        config.issuer,
        config.audiences,
        config.algorithms,
        config.leeway_seconds,
        config.max_lifetime_seconds,
        config.required_claims,
        config.max_token_bytes,
    )


def _signer_key(config: JwtConfig) -> tuple[Any, ...]:
    return (
        config.assertion_signing_key_file,
        config.assertion_issuer,
        config.assertion_ttl_seconds,
    )


def _revocation_key(config: JwtConfig) -> tuple[Any, ...] | None:
    if config.revocation_redis_url is None:
        return None
    return (config.revocation_redis_url, config.revocation_channel, config.revocation_key_prefix)


def runtime_for(config: JwtConfig) -> Runtime:
    """The process-wide runtime for ``config`` (created on first call, then reused)."""
    key = (_validation_key(config), _signer_key(config), _revocation_key(config))
    runtime = _runtimes.get(key)
    if runtime is not None:
        return runtime
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = Runtime(
                keys=_shared_keys(config),
                revocations=_shared_revocations(config),
                signer=_shared_signer(config),
                cache=_shared_cache(config),
            )
            _runtimes[key] = runtime
        return runtime


T = TypeVar("T")


def _get_or_create(registry: dict[Any, T], key: Any, factory: Callable[[], T]) -> T:
    """The registry's object for ``key``, made on first use (callers hold ``_lock``)."""
    found = registry.get(key)
    if found is None:
        found = registry[key] = factory()
    return found


def _shared_keys(config: JwtConfig) -> JwksManager:
    return _get_or_create(
        _keys,
        _keys_key(config),
        lambda: JwksManager(
            jwks_uri=config.jwks_uri,
            static=static_keys(config.jwks, config.public_keys_pem),
            refetch_interval=float(config.jwks_refetch_interval_seconds),
        ),
    )


def _shared_revocations(config: JwtConfig) -> RedisRevocations | NullRevocations:
    key = _revocation_key(config)
    if key is None:
        return _NULL_REVOCATIONS
    url = config.revocation_redis_url
    assert url is not None
    return _get_or_create(
        _revocations,
        key,
        lambda: RedisRevocations(
            url, config.revocation_channel, key_prefix=config.revocation_key_prefix
        ),
    )


def _shared_signer(config: JwtConfig) -> AssertionSigner:
    return _get_or_create(
        _signers,
        _signer_key(config),
        lambda: AssertionSigner(
            config.assertion_signing_key_file,
            issuer=config.assertion_issuer,
            ttl_seconds=config.assertion_ttl_seconds,
        ),
    )


def _shared_cache(config: JwtConfig) -> VerifiedTokenCache:
    return _get_or_create(_caches, _validation_key(config), VerifiedTokenCache)


def reset_runtimes() -> None:
    """Stop every background worker and forget all runtimes (tests, reloads)."""
    with _lock:
        for manager in _keys.values():
            manager.close()
        for revocations in _revocations.values():
            revocations.close()
        _runtimes.clear()
        _keys.clear()
        _revocations.clear()
        _signers.clear()
        _caches.clear()
