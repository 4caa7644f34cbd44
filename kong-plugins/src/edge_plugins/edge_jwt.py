"""``edge-jwt``: validate the caller's JWT at the edge, strip and inject identity (issue 6).

A thin Kong entry over the PDK-free core in :mod:`edge_plugins.jwt`. Per request it makes
as few PDK round trips as it can (each one is a MessagePack-RPC exchange with Kong):

1. ``kong.request.get_headers(1000)`` — first, before any work: kong-pdk serialises the
   work a handler does before its first PDK call across all requests (its ``e_lock``), and
   Kong's default of 100 headers would let a spoofed identity header hide past #100;
2. on success only, ``kong.request.get_method()`` and ``kong.nginx.get_var("upstream_uri")``:
   the assertion is bound to the request's method and to the path the upstream receives
   (docs/identity-assertion.md), and neither is in the headers already read.
   ``get_var`` is ``ngx.var[name]`` (kong/runloop/plugin_servers/plugin.lua), and
   ``upstream_uri`` is what Kong's router set for this request (kong/runloop/handler.lua
   ``var.upstream_uri = escape(match_t.upstream_uri)``, before the plugins' access phase):
   ``strip_path`` and a service path applied, the query not yet appended; one call, where
   recomputing it would take the route and the service (two calls) besides the path;
3. one ``kong.service.request.set_headers`` with the ``X-User-*`` headers and the
   gateway-signed ``X-Identity-Assertion`` (docs/identity-assertion.md);
4. one ``kong.ctx.shared.set("edge.subject", …)`` for later plugins (edge-rate-limit).

So an accepted request costs 5 round trips; anonymous and rejected ones skip those two. A plugin
that runs after this one (priority below 1450) and rewrites the path with
``kong.service.request.set_path`` breaks the binding: the upstream then refuses the
assertion (fails closed), so such a rewrite belongs before edge-jwt.

Client-supplied identity headers (``X-User-*`` in any case, ``_`` for ``-``, and
``X-Identity-Assertion``) are cleared, only when present, with one ``set_headers`` call
however many there are (a client must not buy a round trip per header). A rejection is one
terminal ``kong.response.error`` (Kong's JSON body with the request id, ``WWW-Authenticate``
per RFC 6750, ``Retry-After`` on 503). A header map of 1000 lines may hide more (the first
call sees no further): the request is refused with 431 (jwt.decision).

Kong fails open when this plugin's server is down or hung: the request then reaches the
upstream without an assertion, which every upstream that verifies the assertion treats as
anonymous (docs/identity-assertion.md).

The plugin server serves Prometheus metrics on ``--metrics-port`` of its start command
(default 9102; ``0`` disables them): Kong gives plugin servers no environment
(:mod:`edge_plugins.server`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from edge_plugins.guard import FailurePolicy, error_request, guarded

NAME = "edge-jwt"
version = "0.1.0"
priority = 1450

DEFAULT_METRICS_PORT = 9102
SHARED_SUBJECT_KEY = "edge.subject"
MAX_REQUEST_HEADERS = 1000
UPSTREAM_URI_VARIABLE = "upstream_uri"  # nginx variable Kong proxies to (see module doc)

log = logging.getLogger("edge_plugins.edge_jwt")


def _strings(default: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    field: dict[str, Any] = {
        "type": "array",
        "elements": {"type": "string", "len_min": 1},
        "default": list(default or []),
    }
    field.update(extra)
    return field


_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "HS256",
    "HS384",
    "HS512",
]

# Kong plugin schema (kong/db/schema/metaschema.lua). Kong-pdk puts these fields in the
# plugin's ``config`` record; a record of an external plugin cannot carry entity checks, so
# what needs several fields at once (a key source is set; HS* only with inline ``oct`` keys)
# is checked by JwtConfig.from_kong, and a config failing it answers 500 (logged) rather than
# letting a request through unchecked.
Schema = (
    # Tokens: who issues them, for whom, signed how.
    {"issuer": {"type": "string", "required": True, "len_min": 1}},
    {
        "audiences": {
            "type": "array",
            "elements": {"type": "string", "len_min": 1},
            "required": True,
            "len_min": 1,
        }
    },
    {
        "algorithms": _strings(
            ["RS256"], len_min=1, elements={"type": "string", "one_of": _ALGORITHMS}
        )
    },
    {"leeway_seconds": {"type": "integer", "default": 30, "between": [0, 300]}},
    {"max_lifetime_seconds": {"type": "integer", "between": [1, 366 * 86400]}},
    {"required_claims": _strings()},
    # Key sources (at least one): a remote JWKS, an inline JWKS (JSON text), PEM public keys.
    {"jwks_uri": {"type": "string", "match": "^https?://"}},
    {"jwks": {"type": "string", "len_min": 2}},
    {"public_keys_pem": _strings()},
    {"jwks_refetch_interval_seconds": {"type": "integer", "default": 30, "between": [1, 3600]}},
    # Where the token is looked for; more than one distinct token is a 401.
    {"header_names": _strings(["authorization"], len_min=1)},
    {"cookie_names": _strings()},
    {"query_param_names": _strings()},
    # Per-route policy.
    {"required_scopes": _strings()},
    {"scopes_match": {"type": "string", "default": "all", "one_of": ["any", "all"]}},
    {"required_roles": _strings()},
    {"roles_match": {"type": "string", "default": "all", "one_of": ["any", "all"]}},
    {"optional": {"type": "boolean", "default": False}},
    {"run_on_preflight": {"type": "boolean", "default": True}},
    # Identity sent upstream: X-User-* and the gateway-signed X-Identity-Assertion.
    {"assertion_audience": {"type": "string", "required": True, "len_min": 1}},
    {"assertion_issuer": {"type": "string", "default": "kong-edge", "len_min": 1}},
    # The Ed25519 key (PEM); unset or "" (an env-vault reference that resolved to nothing):
    # the Kong image's /usr/local/kong/keys/gateway-ed25519.pem (jwt.config).
    {"assertion_signing_key_file": {"type": "string", "len_min": 1, "referenceable": True}},
    {"assertion_ttl_seconds": {"type": "integer", "default": 30, "between": [1, 60]}},
    # Revocations announced by the backend (backend/docs/revocation.md).
    {"revocation_redis_url": {"type": "string", "match": "^rediss?://"}},
    {"revocation_channel": {"type": "string", "default": "auth.revocations", "len_min": 1}},
    {"revocation_key_prefix": {"type": "string", "default": "auth.revoked", "len_min": 1}},
    # Infrastructure faults (no usable key): "closed" answers 503 with Retry-After.
    {"failure_policy": {"type": "string", "default": "closed", "one_of": ["closed", "open"]}},
    {"max_token_bytes": {"type": "integer", "default": 8192, "between": [256, 65536]}},
    {"realm": {"type": "string", "default": "api", "len_min": 1, "not_match": '["\\]'}},
)


class Plugin:
    """One instance per plugin config and Kong worker (plugin.lua); state on ``self`` is
    per worker, the keys, caches and subscriptions are process-wide (jwt.state)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # StartInstance runs this: keep it cheap and never raise for a schema-valid config
        # (a raise here is Kong's 500 for every request until the config changes).
        self.failure_policy = FailurePolicy.CLOSED
        self.jwt_config: Any = None
        self.config_error: str | None = None
        try:
            from edge_plugins.jwt.config import JwtConfig

            self.jwt_config = JwtConfig.from_kong(config)
        except Exception as exc:  # noqa: BLE001 - reported on every request instead
            self.config_error = f"{type(exc).__name__}: {exc}"
            log.error("edge-jwt config rejected (requests answer 500): %s", self.config_error)
            return
        # A broken config always fails closed; otherwise the configured policy applies to
        # faults the core cannot decide on (bugs, unexpected exceptions).
        self.failure_policy = FailurePolicy(self.jwt_config.failure_policy)

    @guarded
    def access(self, kong: Any) -> None:
        headers = kong.request.get_headers(MAX_REQUEST_HEADERS)  # first: see module doc
        from edge_plugins.jwt.identity import spoofable_header_names

        spoofed = spoofable_header_names(headers)
        try:
            verdict = self._decide(kong, headers)
        except Exception:
            # Whatever the failure policy does next, no client-supplied identity goes on.
            self._clear(kong, spoofed)
            raise
        if verdict.status != 200:
            error_request(kong, verdict.status, verdict.message, verdict.response_headers)
        self._clear(kong, [*verdict.clear_headers, *spoofed])
        if verdict.upstream_headers:
            kong.service.request.set_headers(verdict.upstream_headers)
        if verdict.subject is not None:
            kong.ctx.shared.set(SHARED_SUBJECT_KEY, verdict.subject)

    def _decide(self, kong: Any, headers: dict[str, list[str]]) -> Any:
        if self.jwt_config is None:
            raise RuntimeError(f"edge-jwt config unusable: {self.config_error}")
        from edge_plugins.jwt.assertion import RequestBinding
        from edge_plugins.jwt.decision import decide
        from edge_plugins.jwt.state import runtime_for

        config = self.jwt_config
        runtime = runtime_for(config)
        # Only a CORS preflight (OPTIONS with Access-Control-Request-Method) can be let
        # through, and only when run_on_preflight is off: ask Kong for the method then only.
        method: str | None = None
        if not config.run_on_preflight and "access-control-request-method" in headers:
            method = kong.request.get_method()
        query = kong.request.get_raw_query() if config.query_param_names else ""

        def request_target() -> RequestBinding:
            # Called by decide for an accepted request only; the method is not asked twice.
            return RequestBinding(
                method or kong.request.get_method(), kong.nginx.get_var(UPSTREAM_URI_VARIABLE)
            )

        return decide(
            config,
            method=method or "GET",
            headers=headers,
            query=query,
            keys=runtime.keys,
            revocations=runtime.revocations,
            signer=runtime.signer,
            cache=runtime.cache,
            now=time.time(),
            request_target=request_target,
        )

    @staticmethod
    def _clear(kong: Any, names: list[str]) -> None:
        """Remove these request headers with one PDK call, however many a client sent: an
        empty list clears a header (kong/pdk/service/request.lua ``set_headers`` →
        ``ngx.req.set_header(name, {})``, the same FFI call as ``clear_header``)."""
        if names:
            kong.service.request.set_headers({name: [] for name in names})


def main() -> None:
    from edge_plugins.server import run_plugin

    run_plugin(
        sys.modules[__name__], preload=("edge_plugins.jwt.decision", "edge_plugins.jwt.state")
    )


if __name__ == "__main__":
    main()
