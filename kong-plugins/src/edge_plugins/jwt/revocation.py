"""Revoked access tokens, as the backend announces them (backend/docs/revocation.md).

A JWT stays valid until ``exp`` unless someone tells the edge otherwise. The backend does,
over Redis: a Pub/Sub message on ``auth.revocations`` per revocation (``jtis`` to reject,
and for "sign out everywhere" a per-subject ``not_before``), mirrored into expiring keys
``auth.revoked:jti:<jti>`` and ``auth.revoked:nbf:<sub>`` for edges that missed it.

:class:`RedisRevocations` keeps that state in memory, so :meth:`is_revoked` is a dict
lookup with **no Redis call per request**; a background subscriber (a thread, i.e. a
greenlet under gevent) applies messages within milliseconds of the backend's commit. On
every (re)connect it subscribes *first* and then reads the keys, so an announcement is
either queued on the subscription or already in the keys: nothing falls between the two.
Connection trouble is retried with backoff and never raises into the request path; while
disconnected the last known state keeps applying (revocation is best-effort by design:
the database is the source of truth, ``POST /internal/auth/validate-token`` checks it).

Entries are forgotten when they can no longer matter: a ``jti`` a little after the token's
``exp`` (the edge accepts tokens up to ``exp`` + leeway), a ``not_before`` after a day.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeGuard

import redis

from edge_plugins.jwt import metrics

log = logging.getLogger(__name__)

MESSAGE_TYPE = "revoke"
DEFAULT_NOT_BEFORE_TTL_SECONDS = 86400.0
DEFAULT_JTI_TTL_SECONDS = 3600.0  # for a jti announced without exp (not sent by the backend)
RETAIN_AFTER_EXP_SECONDS = 300.0  # ≥ the largest leeway the config allows
RECONNECT_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
PURGE_INTERVAL_SECONDS = 60.0
_SCAN_BATCH = 500


class RevocationView(Protocol):
    """What ``decide`` asks about a verified token; must never raise or block."""

    def is_revoked(self, jti: str, sub: str, iat: float) -> bool: ...


class NullRevocations:
    """For configurations without Redis: nothing is ever revoked at the edge."""

    def is_revoked(self, jti: str, sub: str, iat: float) -> bool:
        return False

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None


class RevocationState:
    """Revoked ``jti``\\s and per-subject ``not_before`` times, each with an expiry.

    Reads are lock-free dict lookups (atomic in CPython; greenlets never preempt);
    writers take the lock.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        not_before_ttl: float = DEFAULT_NOT_BEFORE_TTL_SECONDS,
        retain_after_exp: float = RETAIN_AFTER_EXP_SECONDS,
    ) -> None:
        self._clock = clock
        self._not_before_ttl = not_before_ttl
        self._retain_after_exp = retain_after_exp
        self._jtis: dict[str, float] = {}  # jti → forget at (epoch seconds)
        self._not_before: dict[str, tuple[float, float]] = {}  # sub → (not_before, forget at)
        self._lock = threading.Lock()

    def is_revoked(self, jti: str, sub: str, iat: float) -> bool:
        now = self._clock()
        until = self._jtis.get(jti)
        if until is not None and now < until:
            return True
        entry = self._not_before.get(sub)
        return entry is not None and now < entry[1] and iat < entry[0]

    def revoke_jtis(self, jtis: Iterable[object], exp: float | None) -> None:
        """Revoke each non-empty string of ``jtis`` (a message's list, so anything can be in it)."""
        now = self._clock()
        until = (exp + self._retain_after_exp) if exp is not None else now + DEFAULT_JTI_TTL_SECONDS
        if until <= now:
            return
        with self._lock:
            for jti in jtis:
                if isinstance(jti, str) and jti:
                    self._jtis[jti] = max(until, self._jtis.get(jti, 0.0))

    def set_not_before(self, sub: str, not_before: float, ttl: float | None = None) -> None:
        if not sub:
            return
        until = self._clock() + (self._not_before_ttl if ttl is None else ttl)
        with self._lock:
            previous = self._not_before.get(sub)
            if previous is not None:
                not_before = max(not_before, previous[0])
                until = max(until, previous[1])
            self._not_before[sub] = (not_before, until)

    def apply_message(self, data: bytes | str) -> bool:
        """Apply one Pub/Sub payload; ``False`` (logged) for anything that is not a revoke."""
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            log.warning("revocation message is not JSON; ignored")
            return False
        if not isinstance(message, dict) or message.get("type") != MESSAGE_TYPE:
            return False
        jtis = message.get("jtis") or []
        exp = message.get("exp")
        if isinstance(jtis, list) and jtis:
            self.revoke_jtis(jtis, float(exp) if _is_number(exp) else None)
        not_before = message.get("not_before")
        if _is_number(not_before):
            self.set_not_before(str(message.get("sub") or ""), float(not_before))
        return True

    def purge(self) -> None:
        """Forget entries that can no longer matter (bounded memory)."""
        now = self._clock()
        with self._lock:
            self._jtis = {j: u for j, u in self._jtis.items() if u > now}
            self._not_before = {s: e for s, e in self._not_before.items() if e[1] > now}

    def __len__(self) -> int:
        return len(self._jtis) + len(self._not_before)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisRevocations:
    """Revocations from the backend's Redis channel and keys (see the module docstring)."""

    def __init__(
        self,
        url: str,
        channel: str = "auth.revocations",
        *,
        key_prefix: str = "auth.revoked",
        clock: Callable[[], float] = time.time,
        not_before_ttl: float = DEFAULT_NOT_BEFORE_TTL_SECONDS,
        retain_after_exp: float = RETAIN_AFTER_EXP_SECONDS,
        backoff: tuple[float, ...] = RECONNECT_BACKOFF_SECONDS,
        connect_timeout: float = 2.0,
        client_name: str = "edge-jwt-revocations",
    ) -> None:
        self.url = url
        self.channel = channel
        self.key_prefix = key_prefix
        self.state = RevocationState(
            clock=clock, not_before_ttl=not_before_ttl, retain_after_exp=retain_after_exp
        )
        self._clock = clock
        self._backoff = backoff
        self.client_name = client_name  # CLIENT SETNAME: find the subscriber in CLIENT LIST
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until subscribed and resynced (tests, warm-up); ``False`` on timeout."""
        return self._subscribed.wait(timeout)

    def is_revoked(self, jti: str, sub: str, iat: float) -> bool:
        """Whether the backend revoked this token; local state only, never raises."""
        if self._worker is None:
            self.start()
        try:
            return self.state.is_revoked(jti, sub, iat)
        except Exception:  # pragma: no cover - defensive: never break the request path
            log.exception("revocation lookup failed; treating the token as not revoked")
            return False

    def start(self) -> None:
        """Start the subscriber (idempotent, non-blocking)."""
        with self._lock:
            if self._worker is not None or self._stop.is_set():
                return
            self._worker = threading.Thread(
                target=self._run, name="edge-jwt-revocations", daemon=True
            )
            self._worker.start()

    def close(self) -> None:
        self._stop.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=3)

    # -- the subscriber --------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._session()
                attempt = 0
            except (redis.RedisError, OSError) as exc:
                log.warning(
                    "revocation subscriber: %s on %s; reconnecting",
                    type(exc).__name__,
                    self.channel,
                )
            except Exception:
                log.exception("revocation subscriber failed; reconnecting")
            finally:
                self._subscribed.clear()
                metrics.set_revocation_connected(self.channel, False)
            delay = self._backoff[min(attempt, len(self._backoff) - 1)]
            attempt += 1
            self._stop.wait(delay)

    def _session(self) -> None:
        """One connection: subscribe, resync from keys, then apply messages until failure."""
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=max(self._connect_timeout, 5.0),
            socket_keepalive=True,
            health_check_interval=15,
            client_name=self.client_name,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            pubsub.subscribe(self.channel)
            self._await_subscription(pubsub)
            self._resync(client)
            self._subscribed.set()
            metrics.set_revocation_connected(self.channel, True)
            log.info(
                "revocation subscriber on %s ready (%d entries)", self.channel, len(self.state)
            )
            last_purge = time.monotonic()
            while not self._stop.is_set():
                # Short waits keep close() prompt; an idle wait costs nothing measurable.
                message = pubsub.get_message(timeout=0.2)
                if message is not None and message.get("type") == "message":
                    self.state.apply_message(message["data"])
                if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                    self.state.purge()
                    last_purge = time.monotonic()
        finally:
            try:
                pubsub.close()
                client.close()
            except (redis.RedisError, OSError):
                pass

    def _await_subscription(self, pubsub: Any) -> None:
        deadline = time.monotonic() + self._connect_timeout + 3.0
        while time.monotonic() < deadline and not self._stop.is_set():
            message = pubsub.get_message(timeout=0.5)
            if message is None:
                continue
            if message.get("type") == "subscribe":
                return
            if message.get("type") == "message":
                self.state.apply_message(message["data"])
        raise redis.TimeoutError("no subscription confirmation")

    def _resync(self, client: redis.Redis) -> None:
        """Catch up from the backend's expiring keys (messages missed while away)."""
        prefix = _glob_escape(self.key_prefix)
        jti_prefix = f"{self.key_prefix}:jti:"
        nbf_prefix = f"{self.key_prefix}:nbf:"
        now = self._clock()
        jtis = nbfs = 0
        for batch in _batches(client.scan_iter(match=f"{prefix}:jti:*", count=1000)):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.pttl(key)
            for key, pttl in zip(batch, pipe.execute(), strict=True):
                if isinstance(pttl, int) and pttl > 0:
                    jti = _text(key)[len(jti_prefix) :]
                    self.state.revoke_jtis([jti], now + pttl / 1000)
                    jtis += 1
        for batch in _batches(client.scan_iter(match=f"{prefix}:nbf:*", count=1000)):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.get(key)
            for key, value in zip(batch, pipe.execute(), strict=True):
                if value is None:
                    continue  # expired between SCAN and GET
                try:
                    not_before = float(_text(value))
                except (TypeError, ValueError):
                    continue
                # Remembered for the full not-before TTL (longer than the key's): harmless,
                # and safe should tokens live longer than the backend's 15 minutes.
                self.state.set_not_before(_text(key)[len(nbf_prefix) :], not_before)
                nbfs += 1
        log.info("revocations resynced from keys: %d jtis, %d not-before", jtis, nbfs)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _batches(items: Iterable[Any]) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= _SCAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
