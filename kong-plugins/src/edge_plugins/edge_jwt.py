"""``edge-jwt``: validate the caller's JWT at the edge, strip and inject identity.

A thin Kong entry over the PDK-free core in :mod:`edge_plugins.jwt`. Per request it makes
as few PDK round trips as it can (``PDK_CALLS``; each one is a MessagePack-RPC exchange
with Kong):

* ``kong.request.get_headers(1000)`` comes first, before any work: kong-pdk serialises the
  work a handler does before its first PDK call across all requests (its ``e_lock``), and
  Kong's default of 100 headers would let a spoofed identity header hide past #100. A
  header map of 1000 lines may hide more (the first call sees no further): the request is
  refused with 431 (jwt.decision).
* On success only, ``kong.request.get_method()`` and ``kong.nginx.get_var("upstream_uri")``:
  the assertion is bound to the request's method and to the path the upstream receives
  (docs/identity-assertion.md), and neither is in the headers already read. A request let
  through without a token asks for ``upstream_uri`` alone: a path with an encoded ``/`` or
  ``\\`` is refused with 400 on every route (:mod:`edge_plugins.jwt.route_guard`), so the
  route Kong matched is the view the backend runs. ``get_var`` is
  ``ngx.var[name]`` (kong/runloop/plugin_servers/plugin.lua), and ``upstream_uri`` is what
  Kong's router set for this request (kong/runloop/handler.lua
  ``var.upstream_uri = escape(match_t.upstream_uri)``, before the plugins' access phase):
  ``strip_path`` and a service path applied, the query not yet appended; one call, where
  recomputing it would take the route and the service (two calls) besides the path. A
  plugin that runs after this one (priority below 1450) and rewrites the path with
  ``kong.service.request.set_path`` breaks the binding: the upstream then refuses the
  assertion (fails closed), so such a rewrite belongs before edge-jwt.
* One ``kong.service.request.set_headers`` with the ``X-User-*`` headers and the
  gateway-signed ``X-Identity-Assertion``, and one ``kong.ctx.shared.set`` of the subject
  for later plugins (edge-rate-limit).

Client-supplied identity headers (``X-User-*`` in any case, ``_`` for ``-``, and
``X-Identity-Assertion``) and CGI-shaped headers (``SCRIPT_NAME``, ``PATH_INFO`` and kin,
:mod:`edge_plugins.jwt.route_guard`) are cleared, only when present, with one
``set_headers`` call however many there are (a client must not buy a round trip per
header), from the headers already read. A rejection is one
terminal ``kong.response.error`` (Kong's JSON body with the request id, ``WWW-Authenticate``
per RFC 6750, ``Retry-After`` on 503).

The plugin server serves Prometheus metrics on ``--metrics-port`` of its start command
(default ``DEFAULT_METRICS_PORT``; ``0`` disables them): Kong gives plugin servers no
environment (:mod:`edge_plugins.server`). The reference, generated from this module and
:mod:`edge_plugins.jwt.schema`: docs/plugins/edge-jwt.md.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from edge_plugins.guard import FailurePolicy, error_request, guarded
from edge_plugins.jwt.schema import FIELDS
from edge_plugins.logs import bind_headers
from edge_plugins.pdk_calls import PdkCalls
from edge_plugins.responses import ENCODED_SEPARATOR_MESSAGE
from edge_plugins.shared_context import SHARED_SUBJECT_KEY

if TYPE_CHECKING:
    from edge_plugins.jwt.config import JwtConfig
    from edge_plugins.jwt.decision import Verdict

NAME = "edge-jwt"
version = importlib.metadata.version("edge-kong-plugins")
priority = 1450

DEFAULT_METRICS_PORT = 9102
METRICS_MODULE = "edge_plugins.jwt.metrics"
MAX_REQUEST_HEADERS = 1000
UPSTREAM_URI_VARIABLE = "upstream_uri"  # nginx variable Kong proxies to (see module doc)

# Kong plugin schema (kong/db/schema/metaschema.lua), from the one table of settings; a
# config that is schema-valid but unusable answers 500 (logged) rather than letting a
# request through unchecked.
Schema = FIELDS.kong_schema()

_READ = "kong.request.get_headers"
PDK_CALLS = (
    PdkCalls(
        "access",
        "valid token",
        (
            _READ,
            "kong.request.get_method",
            "kong.nginx.get_var",
            "kong.service.request.set_headers",
            "kong.ctx.shared.set",
        ),
    ),
    PdkCalls(
        "access",
        "valid token, spoofed identity headers sent",
        (
            _READ,
            "kong.request.get_method",
            "kong.nginx.get_var",
            "kong.service.request.set_headers",
            "kong.service.request.set_headers",
            "kong.ctx.shared.set",
        ),
    ),
    PdkCalls("access", "no token, `optional` on", (_READ, "kong.nginx.get_var")),
    PdkCalls(
        "access",
        "no token, `optional` on, encoded `/` or `\\` in the path (400)",
        (_READ, "kong.nginx.get_var", "kong.response.error"),
    ),
    PdkCalls("access", "rejected (401, 403, 431, 503)", (_READ, "kong.response.error")),
    PdkCalls(
        "access",
        "valid token, `query_param_names` set",
        (
            _READ,
            "kong.request.get_raw_query",
            "kong.request.get_method",
            "kong.nginx.get_var",
            "kong.service.request.set_headers",
            "kong.ctx.shared.set",
        ),
    ),
)
FAILURE_BEHAVIOUR = (
    "Infrastructure faults (no usable verification key, the JWKS endpoint down with nothing "
    "cached, an unknown `kid` that cannot be refetched) follow `failure_policy`: `closed` "
    "(the default) answers 503 with `Retry-After`, `open` lets the request through as "
    "anonymous with every identity header stripped. A bug in the plugin fails closed: "
    "Kong's 500, identity headers cleared. A config that Kong accepts but the plugin "
    "cannot use answers 500 on every request, logged. When the plugin server is down, Kong "
    "itself fails open: the request reaches the upstream without an assertion, which every "
    "upstream that verifies the assertion treats as anonymous (docs/identity-assertion.md)."
)

log = logging.getLogger("edge_plugins.edge_jwt")


class Plugin:
    """One instance per plugin config and Kong worker (plugin.lua); state on ``self`` is
    per worker, the keys, caches and subscriptions are process-wide (jwt.state)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # StartInstance runs this: keep it cheap and never raise for a schema-valid config
        # (a raise here is Kong's 500 for every request until the config changes).
        self.failure_policy = FailurePolicy.CLOSED
        self.jwt_config: JwtConfig | None = None
        self.config_error: str | None = None
        try:
            from edge_plugins.jwt.config import JwtConfig

            jwt_config = JwtConfig.from_kong(config)
        except Exception as exc:  # noqa: BLE001 - reported on every request instead
            self.config_error = f"{type(exc).__name__}: {exc}"
            log.error("edge-jwt config rejected (requests answer 500): %s", self.config_error)
            return
        # A broken config always fails closed; otherwise the configured policy applies to
        # faults the core cannot decide on (bugs, unexpected exceptions).
        self.jwt_config = jwt_config
        self.failure_policy = FailurePolicy(jwt_config.failure_policy)

    @guarded
    def access(self, kong: Any) -> None:
        headers = kong.request.get_headers(MAX_REQUEST_HEADERS)  # first: see module doc
        bind_headers(headers)  # edge-trace's ids: edge_plugins.logs
        from edge_plugins.jwt.identity import spoofable_header_names
        from edge_plugins.jwt.route_guard import cgi_shaped_header_names, has_encoded_separator

        forged = [*spoofable_header_names(headers), *cgi_shaped_header_names(headers)]
        target = _Target(kong)
        try:
            verdict = self._decide(kong, headers, target)
        except Exception:
            # Whatever the failure policy does next, no client-supplied identity goes on.
            self._clear(kong, forged)
            raise
        if verdict.status != 200:
            error_request(kong, verdict.status, verdict.message, verdict.response_headers)
        if has_encoded_separator(target.upstream_uri()):
            error_request(kong, 400, ENCODED_SEPARATOR_MESSAGE)
        self._clear(kong, [*verdict.clear_headers, *forged])
        if verdict.upstream_headers:
            kong.service.request.set_headers(verdict.upstream_headers)
        if verdict.subject is not None:
            kong.ctx.shared.set(SHARED_SUBJECT_KEY, verdict.subject)

    def _decide(self, kong: Any, headers: dict[str, list[str]], target: _Target) -> Verdict:
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
            return RequestBinding(method or kong.request.get_method(), target.upstream_uri())

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


class _Target:
    """The path Kong forwards, asked of Kong once however many steps need it."""

    def __init__(self, kong: Any) -> None:
        self._kong = kong
        self._upstream_uri: str | None = None

    def upstream_uri(self) -> str:
        if self._upstream_uri is None:
            self._upstream_uri = str(self._kong.nginx.get_var(UPSTREAM_URI_VARIABLE) or "")
        return self._upstream_uri


def main() -> None:
    from edge_plugins.server import run_plugin

    run_plugin(
        sys.modules[__name__], preload=("edge_plugins.jwt.decision", "edge_plugins.jwt.state")
    )


if __name__ == "__main__":
    main()
