"""PDK-free core of the ``edge-jwt`` plugin (issue 6, DESIGN.md §3.2, §3.3, §3.5).

Everything here is plain Python, unit-tested without kong-pdk or any RPC. The plugin entry
(``edge_plugins.edge_jwt``) reads the request once, calls :func:`decision.decide` with the
process-wide pieces from :func:`state.runtime_for`, and applies the returned
:class:`decision.Verdict` with as few PDK round trips as possible.

Modules, one concept each:

* :mod:`.config` — the validated plugin configuration (:class:`JwtConfig`);
* :mod:`.identity` — which request headers are client-supplied identity to strip;
* :mod:`.tokens` — finding the token in the request and validating it;
* :mod:`.jwks` — the verification keys (inline, PEM, remote JWKS kept fresh);
* :mod:`.cache` — verified tokens, so a repeated token costs no crypto;
* :mod:`.assertion` — the gateway-signed ``X-Identity-Assertion``;
* :mod:`.revocation` — revoked tokens announced by the backend over Redis;
* :mod:`.errors` — exception types and RFC 6750 ``WWW-Authenticate`` values;
* :mod:`.metrics` — Prometheus metrics of the plugin server;
* :mod:`.decision` — the whole per-request decision;
* :mod:`.state` — the process-wide runtime shared by all plugin instances.
"""
