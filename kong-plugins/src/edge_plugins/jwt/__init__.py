"""PDK-free core of the ``edge-jwt`` plugin (docs/identity-assertion.md, docs/architecture.md).

Everything here is plain Python, unit-tested without kong-pdk or any RPC. The plugin entry
(``edge_plugins.edge_jwt``) reads the request once, calls :func:`decision.decide` with the
process-wide pieces from :func:`state.runtime_for`, and applies the returned
:class:`decision.Verdict` with as few PDK round trips as possible.

Modules, one concept each:

* :mod:`.schema` — every setting once: Kong's schema, defaults, ranges, descriptions;
* :mod:`.config` — the validated plugin configuration (:class:`JwtConfig`);
* :mod:`.identity` — which request headers are client-supplied identity to strip;
* :mod:`.route_guard` — the CGI-shaped and rewrite headers a client must not send upstream;
* :mod:`.extract` — finding the token in the request;
* :mod:`.verify` — verifying its signature and claims;
* :mod:`.authorize` — the route's scope and role requirements;
* :mod:`.keys` — parsing verification keys (inline JWKS, PEM, a fetched JWKS);
* :mod:`.fetch` — fetching a remote JWKS and its freshness (``Cache-Control``);
* :mod:`.key_manager` — the keys of one key source, kept fresh;
* :mod:`.cache` — verified tokens, so a repeated token costs no crypto;
* :mod:`.assertion` — the gateway-signed ``X-Identity-Assertion``;
* :mod:`.revocation` — revoked tokens announced by the backend over Redis;
* :mod:`.errors` — exception types and RFC 6750 ``WWW-Authenticate`` values;
* :mod:`.metrics` — Prometheus metrics of the plugin server;
* :mod:`.decision` — the whole per-request decision;
* :mod:`.state` — the process-wide runtime shared by all plugin instances.
"""
