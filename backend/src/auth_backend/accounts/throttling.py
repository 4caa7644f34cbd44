"""Per-account sign-in throttling in Redis: bounded exponential back-off, never a lockout.

The edge limits requests per client IP, but anything that reaches the backend directly
(any internal host) could try passwords without limit. This throttle is the backend's own
and counts *per account*, as the OWASP Authentication Cheat Sheet ("Account Lockout") asks:
"the counter of failed logins should be associated with the account itself, rather than the
source IP address", with an exponentially growing, bounded wait instead of a lockout an
attacker could use to keep the owner out.

Policy (settings in ``auth_backend.settings``, documented in backend/docs/accounts.md):

* Every failed password sign-in (every 401 ``invalid_credentials``: unknown email, wrong
  password, no password, inactive) counts, keyed by the *submitted* address -- so an
  unknown address is throttled exactly like a real one and a 429 reveals nothing.
* **client** limit, this address from this client (its IP; IPv6 by /64, which one host
  typically holds): after ``LOGIN_THROTTLE_FAILURES`` failures every further attempt from it
  is refused for ``BASE * 2^(failures - threshold)`` seconds, at most
  ``LOGIN_THROTTLE_MAX_DELAY_SECONDS``. One source gets about 15 guesses, then one per
  maximum delay.
* **account** limit, this address from any client: the same from
  ``LOGIN_THROTTLE_ACCOUNT_FAILURES`` failures, against guessing spread over many addresses.
  A client that signed in to this account successfully within
  ``LOGIN_THROTTLE_KNOWN_CLIENT_SECONDS`` is exempt from it (only its own client limit
  applies) -- the idea of OWASP's "Slow Down Online Guessing Attacks with Device Cookies",
  with the address as the device: an attacker elsewhere cannot keep the owner out.
* A refused attempt is answered 429 with ``Retry-After`` before anything else: the password
  is not checked (no oracle, no Argon2 cost) and the attempt is not counted, so waiting is
  always enough. A counter lives ``LOGIN_THROTTLE_WINDOW_SECONDS`` after its last failure
  plus the wait it set. A successful sign-in (right password) clears both counters.
* **Redis down or slow** (``LOGIN_THROTTLE_REDIS_TIMEOUT_MS``, no retries): fail open --
  the sign-in goes on unthrottled, logged and counted
  (``auth_login_throttle_errors_total``). Failing closed would turn a Redis outage into a
  sign-in outage for every user; without the throttle, guessing is still bounded by Argon2's
  cost per attempt and the edge's per-IP limits, and Redis outages are short and alerted on.

Keys: ``<prefix>:{<account>}:…`` where ``<account>`` is an HMAC (``SECRET_KEY``) of the
normalised address -- no email in Redis -- and the braces are a Redis Cluster hash tag that
keeps one account's keys in one slot for the Lua script.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import redis
from django.conf import settings
from django.utils.crypto import salted_hmac
from redis.backoff import NoBackoff
from redis.retry import Retry

from auth_backend.accounts.models import normalize_email
from auth_backend.core.metrics import LOGIN_THROTTLE_ERRORS, LOGIN_THROTTLED

log = logging.getLogger(__name__)

UNKNOWN_CLIENT = "unknown"

# KEYS: client failures, client block, account failures, account block.
# ARGV: client threshold, account threshold, base ms, max ms, window ms.
# Counts one failure in both counters; a counter at or past its threshold (re)starts its
# block for base * 2^(count - threshold) ms, at most max. Returns both blocks' lengths.
_RECORD_FAILURE = """
local result = {}
for i = 0, 1 do
  local counter, block = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local threshold = tonumber(ARGV[1 + i])
  local count = redis.call('INCR', counter)
  local delay = 0
  if threshold > 0 and count >= threshold then
    local exponent = math.min(count - threshold, 40)
    delay = math.floor(math.min(tonumber(ARGV[3]) * 2 ^ exponent, tonumber(ARGV[4])))
    if delay >= 1 then
      redis.call('SET', block, '1', 'PX', delay)
    end
  end
  redis.call('PEXPIRE', counter, tonumber(ARGV[5]) + delay)
  result[i + 1] = delay
end
return result
"""


@dataclass(frozen=True)
class LoginAttempt:
    """Whose sign-in this is, as the throttle keys it."""

    account: str  # HMAC of the normalised email
    client: str  # the client's address (IPv6: its /64), or "unknown"

    @classmethod
    def of(cls, email: str, client_address: str | None) -> LoginAttempt:
        account = salted_hmac(
            "auth_backend.accounts.throttling", normalize_email(email), algorithm="sha256"
        ).hexdigest()[:32]
        return cls(account=account, client=client_key(client_address))

    def _key(self, *parts: str) -> str:
        return ":".join((settings.LOGIN_THROTTLE_KEY_PREFIX, f"{{{self.account}}}", *parts))

    @property
    def client_failures(self) -> str:
        return self._key("client", self.client, "failures")

    @property
    def client_block(self) -> str:
        return self._key("client", self.client, "block")

    @property
    def account_failures(self) -> str:
        return self._key("account", "failures")

    @property
    def account_block(self) -> str:
        return self._key("account", "block")

    @property
    def known_client(self) -> str:
        return self._key("client", self.client, "known")


@dataclass(frozen=True)
class Refusal:
    """A throttled attempt: how long to wait, and which limit refused it."""

    retry_after: int  # whole seconds, rounded up
    scope: str  # "client" or "account"


# --- the client's address --------------------------------------------------------------------


def client_key(address: str | None) -> str:
    """The throttle's name for a client address: the IP, IPv6 reduced to its /64."""
    try:
        ip = ip_address((address or "").strip())
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _parse_ip(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(value.strip())
    except ValueError:
        return None


def client_address(meta: Mapping[str, Any]) -> str | None:
    """The address of the client a request comes from (``request.META``).

    ``REMOTE_ADDR``, unless it is one of ``LOGIN_THROTTLE_TRUSTED_PROXIES`` (the gateway):
    then the right-most ``X-Forwarded-For`` address that is not a trusted proxy, as nginx's
    realip module does with ``real_ip_recursive on``. Addresses left of it were written by
    the client and prove nothing. A direct caller's ``X-Forwarded-For`` is never read.
    """
    remote = _parse_ip(str(meta.get("REMOTE_ADDR") or ""))
    trusted = settings.LOGIN_THROTTLE_TRUSTED_PROXIES
    if remote is None or not any(remote in network for network in trusted):
        return str(remote) if remote is not None else None
    client = remote
    for hop in reversed(str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
        ip = _parse_ip(hop)
        if ip is None:
            break
        client = ip
        if not any(ip in network for network in trusted):
            break
    return str(client)


# --- Redis -----------------------------------------------------------------------------------

_clients_lock = threading.Lock()
_clients: dict[tuple[str, int], redis.Redis] = {}


def _redis() -> redis.Redis:
    """A client per (URL, timeout): connect and every command give up after the timeout,
    with no retries (redis-py retries by default, which would multiply it)."""
    url, timeout_ms = settings.REDIS_URL, settings.LOGIN_THROTTLE_REDIS_TIMEOUT_MS
    with _clients_lock:
        client = _clients.get((url, timeout_ms))
        if client is None:
            timeout = max(timeout_ms, 1) / 1000
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            _clients[(url, timeout_ms)] = client
        return client


def _failed_open(operation: str, exc: Exception) -> None:
    LOGIN_THROTTLE_ERRORS.labels(operation=operation).inc()
    log.warning(
        "sign-in throttle unavailable, not throttling (fail open)",
        extra={"operation": operation, "error": type(exc).__name__},
    )


# --- the policy ------------------------------------------------------------------------------


def refusal(attempt: LoginAttempt) -> Refusal | None:
    """Whether ``attempt`` must wait; counted in ``auth_login_throttled_total`` when so."""
    if not settings.LOGIN_THROTTLE_ENABLED:
        return None
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.pttl(attempt.client_block)
        pipe.pttl(attempt.account_block)
        pipe.exists(attempt.known_client)
        client_ms, account_ms, known = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _failed_open("check", exc)
        return None
    if known:
        account_ms = -2  # this client signed in to the account lately: only its own limit
    wait_ms, scope = max((client_ms, "client"), (account_ms, "account"))
    if wait_ms <= 0:
        return None
    LOGIN_THROTTLED.labels(scope=scope).inc()
    return Refusal(retry_after=max(math.ceil(wait_ms / 1000), 1), scope=scope)


def record_failure(attempt: LoginAttempt) -> None:
    """Count a failed sign-in for the client and the account (may start a wait)."""
    if not settings.LOGIN_THROTTLE_ENABLED:
        return
    try:
        script = _redis().register_script(_RECORD_FAILURE)  # EVALSHA, loaded once
        script(
            keys=[
                attempt.client_failures,
                attempt.client_block,
                attempt.account_failures,
                attempt.account_block,
            ],
            args=[
                max(settings.LOGIN_THROTTLE_FAILURES, 0),
                max(settings.LOGIN_THROTTLE_ACCOUNT_FAILURES, 0),
                max(settings.LOGIN_THROTTLE_BASE_DELAY_SECONDS * 1000, 1),
                max(settings.LOGIN_THROTTLE_MAX_DELAY_SECONDS * 1000, 1),
                max(settings.LOGIN_THROTTLE_WINDOW_SECONDS * 1000, 1),
            ],
        )
    except (redis.RedisError, OSError) as exc:
        _failed_open("failure", exc)


def record_success(attempt: LoginAttempt) -> None:
    """The right password: clear both counters; the client is known to the account."""
    if not settings.LOGIN_THROTTLE_ENABLED:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.delete(
            attempt.client_failures,
            attempt.client_block,
            attempt.account_failures,
            attempt.account_block,
        )
        pipe.set(attempt.known_client, "1", ex=max(settings.LOGIN_THROTTLE_KNOWN_CLIENT_SECONDS, 1))
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _failed_open("success", exc)
