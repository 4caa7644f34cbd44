"""Prometheus metrics of the backend (prometheus-client, default registry).

Metrics are defined here, once per process, and incremented by the services that own them;
whatever exposes the registry (the metrics listener on port 9100) serves them
all. Names follow Prometheus conventions: ``auth_`` prefix, ``_total`` for counters, labels
of small, fixed sets only (never an email, a user id or an address).
"""

from __future__ import annotations

from prometheus_client import Counter

LOGIN_THROTTLED = Counter(
    "auth_login_throttled_total",
    "Password sign-ins refused with 429 by the per-account throttle "
    "(backend/docs/accounts.md), by the limit that refused them.",
    ["scope"],  # "client": this account from this address; "account": from any address
)
LOGIN_THROTTLE_ERRORS = Counter(
    "auth_login_throttle_errors_total",
    "Sign-in throttle operations that failed on Redis; the sign-in went on unthrottled "
    "(fail open).",
    ["operation"],  # "check", "failure", "success"
)

# Every series exists from the start (at 0), so rate() and alerts see the first increment.
for _scope in ("client", "account"):
    LOGIN_THROTTLED.labels(scope=_scope)
for _operation in ("check", "failure", "success"):
    LOGIN_THROTTLE_ERRORS.labels(operation=_operation)

ASSERTION_REJECTED = Counter(
    "auth_gateway_assertion_rejected_total",
    "Requests without a valid gateway identity assertion that needed an identity, or that "
    "carried an assertion on any endpoint (docs/identity-assertion.md): traffic that "
    "bypassed edge-jwt (Kong fails open) or misused an assertion, by reason.",
    ["reason"],  # auth_backend.identity.assertion.Rejection; each series starts at 0 there
)
