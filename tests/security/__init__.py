"""The security suite: attacks on the edge and the backend, end to end.

One stack for the whole suite (conftest.py, stack.py): the real backend under gunicorn and
the harness gateway running kong/kong.yml's prometheus, edge-trace, edge-jwt and
edge-rate-limit, plus a recording "tap" upstream behind a protected and an optional route.
Every case asserts the status and that no upstream saw an identity the client chose
(probes.py: ``refused_everywhere``, ``accepted_as``, ``assert_upstream_identity``).

Where each attack is:

* test_tokens.py — alg none/None/NONE; other algorithms; HS/RS key confusion with every
  encoding of the published RSA key; ``kid`` traversal and injection; ``jku``/``x5u``/
  embedded ``jwk``/``x5c``/``crit``/``b64`` headers (never followed); null, stripped and
  truncated signatures; weak HMAC secrets; exp/nbf/iat edges (NaN, infinity, huge); wrong
  iss/aud; claim type confusion; huge, deeply nested and duplicate-key tokens; invalid
  base64/UTF-8; non-ASCII Authorization headers.
* test_sessions.py — tokens in several sources; two Authorization headers; a refresh token
  as access token; the token of a deactivated user, after logout, after a password change;
  refresh-token reuse revoking the family.
* test_identity_headers.py — identity headers in every case/underscore variant,
  duplicated, past header 100 and 1000, beside non-UTF-8 values.
* test_paths.py — ``/internal/``, ``/admin/`` and the metrics through path tricks,
  absolute-form targets and Host tricks.
* test_smuggling.py — CL+TE, TE+CL, duplicate and malformed CL, obs-fold, duplicate Host,
  unknown transfer codings.
* test_backend_direct.py — straight to the backend: forged, expired, wrong-audience,
  wrong-issuer, mis-bound, revoked and replayed assertions, and writes with them.
* test_routes.py — the route the edge matched is the view that runs: ``SCRIPT_NAME`` and
  other CGI-shaped headers (through the gateway and straight to the backend), encoded
  ``/`` and ``\\`` on every route; test_route_property.py — the same as a property over
  every route of kong/kong.yml (headers, encodings, dot segments), observed through Kong's
  per-route and the backend's per-view metrics (views.py).
* test_request_size.py — bodies over kong.conf's limit are Kong's 413, no plugin, no upstream.
* test_server_header.py — no ``Server: gunicorn`` through the gateway or straight.
* test_accounts.py — mass assignment on the profile; user enumeration through register,
  login, resend-verification and password reset (responses, and timing within the bound
  its docstring states).

Related tests elsewhere go deeper on one layer: kong-plugins/tests/jwt (edge-jwt's rules),
kong/harness/tests/test_router.py (Kong's path normalisation), backend/tests/test_identity*.py
and test_accounts_enumeration.py (the backend in process).
"""
