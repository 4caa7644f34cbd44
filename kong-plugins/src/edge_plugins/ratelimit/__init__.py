"""PDK-free core of the ``edge-rate-limit`` plugin: exact per-key limits, clock-injectable.

Nothing here imports kong-pdk; the plugin entry (``edge_plugins.edge_rate_limit``) reads the
client key and hands it to :class:`.enforcer.Enforcer`. Modules, one concept each:

* :mod:`.schema` — every setting once: Kong's schema, defaults, ranges, descriptions;
* :mod:`.config` — the validated plugin configuration (:class:`.config.RateLimitConfig`);
* :mod:`.client_address` — the counter key of a client IP (IPv6 prefixes, IPv4-mapped);
* :mod:`.limits` — a limit and a decision;
* :mod:`.sliding_window`, :mod:`.gcra` — the two algorithms;
* :mod:`.local_store` — their state, process-wide, for ``policy: local``;
* :mod:`.redis_store` — their state in Redis for ``policy: redis`` (one Lua call a decision);
* :mod:`.redis_connections` — the connections those calls borrow (bounded, LIFO);
* :mod:`.breaker` — the circuit breaker in front of Redis;
* :mod:`.enforcer` — one request's verdict: which store decides, what the client is told;
* :mod:`.headers` — decisions as IETF ``RateLimit`` and Kong's ``X-RateLimit-*`` headers;
* :mod:`.errors` — the exception types;
* :mod:`.metrics` — Prometheus metrics of the plugin server.
"""
