"""Who the caller is, as the gateway asserts it: every check of docs/identity-assertion.md.

The edge validates the user's token and sends a compact JWS, ``X-Identity-Assertion``,
signed with the gateway's key. A service trusts identity **only** through it: signature
against the gateway's public JWKS, ``iss`` the gateway, ``aud`` this service, not expired
(small leeway), minted for this very request (``req_method`` and ``req_path``), the plain
``X-User-*`` headers, when present, equal to its claims, its user token not revoked and its
``assertion_id`` never seen before (:mod:`edge_identity.store`). Anything else is anonymous —
which is also what a request that reached the service while a gateway plugin server was
down looks like — and says why (:class:`~edge_identity.rules.Rejection`).

Checking the assertion id claims it: verify each request once and keep the result (the
middlewares do).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_identity.keys import GatewayKeys
from edge_identity.rules import (
    AssertionRejected,
    GatewayIdentity,
    KeyLookup,
    Rejection,
    names_request,
    plain_headers_agree,
    verify,
)
from edge_identity.store import (
    DEFAULT_REVOKED_KEY_PREFIX,
    Admission,
    AssertionStore,
    RedisAssertionStore,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

ASSERTION_HEADER = "HTTP_X_IDENTITY_ASSERTION"  # CGI/WSGI spelling (PEP 3333)
DEFAULT_ISSUER = "kong-edge"
DEFAULT_LEEWAY_SECONDS = 5.0
UNAVAILABLE_LOG_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class IdentityResult:
    """A verified identity, or why there is none."""

    identity: GatewayIdentity | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True)
class AssertionVerifier:
    """The checks for one service: its gateway keys, its name (``aud``), the gateway's
    ``iss``, the leeway, and the once-only / revocation store."""

    keys: KeyLookup
    audience: str
    store: AssertionStore
    issuer: str = DEFAULT_ISSUER
    leeway: float = DEFAULT_LEEWAY_SECONDS
    clock: Callable[[], float] = time.time

    @classmethod
    def from_config(
        cls,
        *,
        jwks: str,
        audience: str,
        redis_url: str | None = None,
        store: AssertionStore | None = None,
        issuer: str = DEFAULT_ISSUER,
        leeway: float = DEFAULT_LEEWAY_SECONDS,
        seen_key_prefix: str | None = None,
        revoked_key_prefix: str = DEFAULT_REVOKED_KEY_PREFIX,
    ) -> AssertionVerifier:
        """The usual set-up: the gateway's JWKS (file or URL), this service's name, and a
        Redis every instance of it shares (``redis_url``, needs the ``redis`` extra), where
        assertion ids are claimed under ``<seen_key_prefix>:seen:…`` (default
        ``<audience>.assertion``) and revocations read from ``<revoked_key_prefix>:jti:…``.
        ``store`` replaces the Redis store (another backend, or a test's)."""
        if store is None:
            if not redis_url:
                raise ValueError("give redis_url (or a store)")
            store = RedisAssertionStore.from_url(
                redis_url,
                seen_key_prefix=seen_key_prefix or f"{audience}.assertion",
                revoked_key_prefix=revoked_key_prefix,
            )
        return cls(GatewayKeys(jwks).key_for, audience, store, issuer=issuer, leeway=float(leeway))

    def verify_request(
        self, environ: Mapping[str, Any], method: str, path: str, *, admit: bool = True
    ) -> IdentityResult:
        """The verified identity of a request, or the rejection that voids it.

        ``environ`` holds its headers as a WSGI server passes them (``HTTP_X_USER_ID``;
        :func:`cgi_headers` turns ASGI headers into that); ``method`` and ``path`` are the
        request's, the path decoded and with any script prefix in front (the gateway binds
        the whole path it sends). Claims the assertion's id: once per request.

        ``admit=False`` skips the store (the once-only and revocation checks): only for an
        endpoint whose sole effect is ending the asserted user's own session, while the
        store cannot answer — replaying such an assertion could only end that session again.
        """
        token = environ.get(ASSERTION_HEADER)
        if not token:
            return IdentityResult(rejection=Rejection.MISSING)
        try:
            identity = self._identity(environ, str(token), method, path, admit=admit)
        except AssertionRejected as exc:
            if exc.reason is not Rejection.UNAVAILABLE:
                log.warning(
                    "gateway identity assertion rejected; treating as anonymous",
                    extra={"reason": exc.reason.value},
                )
            return IdentityResult(rejection=exc.reason)
        return IdentityResult(identity=identity)

    def _identity(
        self, environ: Mapping[str, Any], token: str, method: str, path: str, *, admit: bool
    ) -> GatewayIdentity:
        claims = verify(
            token, self.keys, audience=self.audience, issuer=self.issuer, leeway=self.leeway
        )
        identity = GatewayIdentity.of(claims)
        if not names_request(claims, method, path):
            raise AssertionRejected(Rejection.MISMATCHED_REQUEST)
        if not plain_headers_agree(environ, identity):
            raise AssertionRejected(Rejection.HEADER_MISMATCH)
        if admit:
            self._admit(claims, identity.token_id)
        return identity

    def _admit(self, claims: Mapping[str, Any], token_id: str) -> None:
        """Claim the assertion id unless it was used before or its user token is revoked."""
        # Remember the id for as long as the assertion could still verify here.
        ttl = max(1, math.ceil(claims["exp"] + self.leeway - self.clock()))
        try:
            admission = self.store.admit(
                assertion_id=claims["assertion_id"], token_id=token_id, ttl_seconds=ttl
            )
        except StoreUnavailable as exc:
            _log_unavailable(str(exc))
            raise AssertionRejected(Rejection.UNAVAILABLE) from None
        if admission is Admission.REVOKED:
            raise AssertionRejected(Rejection.REVOKED)
        if admission is Admission.REPLAYED:
            raise AssertionRejected(Rejection.REPLAYED)


def cgi_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a WSGI server passes them: ``HTTP_`` + upper case, ``-`` → ``_``,
    repeats joined with ``,`` (so ``X-User_Id`` and ``X-User-Id`` fold onto one key, as in
    Django, and two assertions make one that does not verify)."""
    environ: dict[str, str] = {}
    for raw_name, raw_value in headers:
        key = "HTTP_" + raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


_unavailable_lock = threading.Lock()
_last_unavailable_log = 0.0


def _log_unavailable(error: str) -> None:
    """Log store failures at most every few seconds: during an outage every identity-bearing
    request fails the same way, and a counter has the numbers."""
    global _last_unavailable_log
    now = time.monotonic()
    with _unavailable_lock:
        if now - _last_unavailable_log < UNAVAILABLE_LOG_INTERVAL_SECONDS:
            return
        _last_unavailable_log = now
    log.warning(
        "identity checks unavailable (store); requests with a gateway identity are "
        "anonymous until it answers",
        extra={"error": error},
    )
