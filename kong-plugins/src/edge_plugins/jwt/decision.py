"""The whole per-request decision of edge-jwt, as one function of its inputs.

The plugin reads the request once (``kong.request.get_headers``), calls :func:`decide`, and
applies the :class:`Verdict`: clear the spoofed identity headers it lists, then either set
``upstream_headers`` in one ``kong.service.request.set_headers`` call and share ``subject``,
or answer ``status`` with ``message`` and ``response_headers``. Keeping every branch here,
away from the PDK, is what lets the unit tests cover each of them without Kong.

Order matters and is deliberate:

0. a header map holding :data:`MAX_VISIBLE_HEADER_LINES` lines may be cut short (Kong's
   ``get_headers`` stops there): what lies past it — a spoofed ``X-User-Id``, a second
   token — is unknown, so the request is refused with 431 (:func:`too_many_header_lines`);
1. spoofed identity headers are listed for clearing on *every* request, whatever follows;
2. a CORS preflight passes (anonymous) when the route does not ``run_on_preflight``;
3. the token is extracted; none at all → anonymous on ``optional`` routes, else 401 with a
   bare challenge (RFC 6750 §3.1: no error code when no credentials were sent);
4. a token is always validated, on optional routes too: a *bad* token is rejected, never
   silently downgraded to anonymous (that would hide attacks and client bugs);
5. validation is skipped for a token in the verified-token cache; revocation and the
   route's scope/role policy are checked on every request (they change without the token);
6. infrastructure faults (no key can decide, the signing key is unreadable) follow the
   ``failure_policy``: ``closed`` → 503 + ``Retry-After``; ``open`` → anonymous pass, which
   the backend treats as unauthenticated because no assertion comes with it;
7. only an accepted request asks for its method and upstream path (``request_target``),
   to bind its assertion to it: anonymous and rejected requests cost no round trip more.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from edge_plugins.exemplars import trace_exemplar
from edge_plugins.jwt import metrics
from edge_plugins.jwt.assertion import AssertionSigner, RequestBinding
from edge_plugins.jwt.authorize import authorize
from edge_plugins.jwt.cache import VerifiedTokenCache, token_digest
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import (
    BearerError,
    InsufficientScope,
    KeysUnavailable,
    SigningKeyError,
    TokenRejected,
    www_authenticate,
)
from edge_plugins.jwt.extract import extract_token
from edge_plugins.jwt.identity import Identity, spoofable_header_names
from edge_plugins.jwt.keys import KeySource
from edge_plugins.jwt.revocation import RevocationView
from edge_plugins.jwt.verify import verify_token
from edge_plugins.responses import (
    AUTH_UNAVAILABLE_MESSAGE,
    BEARER_MESSAGES,
    TOO_MANY_HEADERS_MESSAGE,
)

log = logging.getLogger(__name__)
_P = ParamSpec("_P")

SIGNER_RETRY_AFTER_SECONDS = 30
# kong.request.get_headers(max_headers) accepts at most 1000 (kong/pdk/request.lua) and
# returns the first max_headers header lines, silently (ngx.req.get_headers).
MAX_VISIBLE_HEADER_LINES = 1000


@dataclass(frozen=True)
class Verdict:
    """What the plugin must do with the request (see the module docstring)."""

    status: int  # 200 (pass) | 401 | 403 | 431 | 503
    upstream_headers: dict[str, str] = field(default_factory=dict)
    clear_headers: tuple[str, ...] = ()
    response_headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    subject: str | None = None
    reason: str = "ok"

    @property
    def allowed(self) -> bool:
        return self.status == 200


def header_lines(headers: Mapping[str, Any]) -> int:
    """How many request header lines Kong's multimap holds: each value of a list is a line."""
    return sum(len(v) if isinstance(v, list | tuple) else 1 for v in headers.values())


def too_many_header_lines(
    headers: Mapping[str, Any], clear: tuple[str, ...] = ()
) -> Verdict | None:
    """Fail closed when the map may be truncated: it holds the most lines Kong hands out.

    The plugin cannot see past line :data:`MAX_VISIBLE_HEADER_LINES`, where a client could
    put an identity header or a token. Kong 3.9.3's nginx rejects line 1001 itself (400,
    build/openresty/patches/nginx-1.25.3_17-CVE-2026-49975.patch), but an operator may raise
    ``max_headers`` and older Kongs have no limit: so exactly 1000 lines are refused too.
    431 (RFC 6585 §5) says what is wrong and that resending the same request will not help;
    it stays apart from the 400s of malformed input and the 401s of bad tokens in metrics.
    """
    if header_lines(headers) < MAX_VISIBLE_HEADER_LINES:
        return None
    return Verdict(
        431, clear_headers=clear, message=TOO_MANY_HEADERS_MESSAGE, reason="too_many_headers"
    )


def is_preflight(method: str, headers: Mapping[str, Any]) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
    return (
        method.upper() == "OPTIONS"
        and bool(headers.get("origin"))
        and bool(headers.get("access-control-request-method"))
    )


def _result(verdict: Verdict) -> str:
    if verdict.status != 200:
        return "rejected"
    if verdict.subject is not None:
        return "accepted"
    return "failed_open" if verdict.reason.endswith("_unavailable") else "anonymous"


def _recorded(decide: Callable[_P, Verdict]) -> Callable[_P, Verdict]:
    """Count each verdict in ``edge_jwt_validations_total``, whichever return gave it."""

    @functools.wraps(decide)
    def counted(*args: _P.args, **kwargs: _P.kwargs) -> Verdict:
        verdict = decide(*args, **kwargs)
        metrics.record_validation(_result(verdict), verdict.reason)
        return verdict

    return counted


@_recorded
def decide(
    config: JwtConfig,
    *,
    method: str,
    headers: Mapping[str, Any],
    query: str,
    keys: KeySource,
    revocations: RevocationView,
    signer: AssertionSigner,
    cache: VerifiedTokenCache,
    now: float,
    request_target: Callable[[], RequestBinding],
) -> Verdict:
    """Decide one request. ``headers`` is Kong's lower-case multimap; ``now`` epoch seconds.

    ``request_target`` gives the method and upstream path the assertion is bound to; it is
    called only when an assertion is signed (its PDK round trips are paid by accepted
    requests alone) and may raise, which the plugin's failure policy handles.

    Records ``edge_jwt_validations_total`` (and ``edge_jwt_verify_seconds`` on a cache miss)
    itself: the caller must not count the verdict again.
    """
    clear = tuple(spoofable_header_names(headers.keys()))
    truncated = too_many_header_lines(headers, clear)
    if truncated is not None:
        return truncated
    if not config.run_on_preflight and is_preflight(method, headers):
        return Verdict(200, clear_headers=clear, reason="preflight")
    try:
        token = extract_token(config, headers, query)
    except TokenRejected as exc:
        return _unauthorized(config, clear, exc)
    if token is None:
        if config.optional:
            return Verdict(200, clear_headers=clear, reason="anonymous")
        return Verdict(
            401,
            clear_headers=clear,
            message=BEARER_MESSAGES[None],
            reason="missing",
            response_headers={"WWW-Authenticate": www_authenticate(config.realm)},
        )
    if len(token) > config.max_token_bytes:
        return _unauthorized(config, clear, TokenRejected("oversized"))

    digest = token_digest(token)
    claims = cache.get(digest, now)
    if claims is None:
        started = time.perf_counter()
        try:
            claims = verify_token(token, config, keys, now)
        except TokenRejected as exc:
            return _unauthorized(config, clear, exc)
        except KeysUnavailable as exc:
            return _unavailable(config, clear, exc.retry_after, "keys_unavailable")
        finally:
            metrics.observe_verify_seconds(time.perf_counter() - started, trace_exemplar(headers))
        cache.put(digest, claims, float(claims["exp"]), now)

    if revocations.is_revoked(str(claims["jti"]), str(claims["sub"]), float(claims["iat"])):
        return _unauthorized(config, clear, TokenRejected("revoked"))
    try:
        authorize(config, claims)
    except InsufficientScope as exc:
        error = BearerError.INSUFFICIENT_SCOPE
        return Verdict(
            403,
            clear_headers=clear,
            message=BEARER_MESSAGES[error],
            reason=exc.reason,
            response_headers={"WWW-Authenticate": www_authenticate(config.realm, error)},
        )
    identity = Identity.from_claims(claims)
    target = request_target()
    try:
        assertion = signer.sign(claims, config.assertion_audience, request=target, now=now)
    except SigningKeyError as exc:
        log.error("identity assertion cannot be signed: %s", exc)
        return _unavailable(config, clear, SIGNER_RETRY_AFTER_SECONDS, "signer_unavailable")
    return Verdict(
        200,
        upstream_headers=identity.upstream_headers(assertion),
        clear_headers=clear,
        subject=identity.subject,
        reason="ok",
    )


def _unauthorized(config: JwtConfig, clear: tuple[str, ...], exc: TokenRejected) -> Verdict:
    return Verdict(
        401,
        clear_headers=clear,
        message=BEARER_MESSAGES[exc.error],
        reason=exc.reason,
        response_headers={"WWW-Authenticate": www_authenticate(config.realm, exc.error)},
    )


def _unavailable(
    config: JwtConfig, clear: tuple[str, ...], retry_after: int, reason: str
) -> Verdict:
    if config.failure_policy == "open":
        # No identity goes upstream: the backend sees an anonymous request.
        return Verdict(200, clear_headers=clear, reason=reason)
    return Verdict(
        503,
        clear_headers=clear,
        message=AUTH_UNAVAILABLE_MESSAGE,
        reason=reason,
        response_headers={"Retry-After": str(max(1, int(retry_after)))},
    )
