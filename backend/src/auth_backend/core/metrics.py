"""Prometheus metrics of the backend (prometheus-client, default registry).

Metrics are defined here, once per process, and incremented by the services that own them;
whatever exposes the registry (the metrics listener on port 9100) serves them
all. Names follow Prometheus conventions: ``auth_`` prefix, ``_total`` for counters, labels
of small, fixed sets only (never an email, a user id or an address).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from cryptography import x509
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

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
    ["reason"],  # edge_identity.Rejection; identity.assertion starts each series at 0
)

# --- business metrics (backend/docs/metrics.md) ----------------------------------------------
# Each is incremented once, by the service where the event happens, after that service's own
# transaction committed (a refused or rolled-back operation counts as what the caller saw).

LOGIN_FAILURE_REASONS = (
    "throttled",
    "unknown_email",
    "no_password",
    "wrong_password",
    "inactive",
    "email_not_verified",
)

LOGINS = Counter(
    "auth_login_total",
    "Password sign-ins (accounts.services.sign_in.login), by outcome: status success (right "
    "password, verified, active; requires_2fa says whether a 2FA challenge was issued instead of "
    "tokens) or failure (requires_2fa is always false).",
    ["status", "requires_2fa"],
)
LOGIN_FAILURES = Counter(
    "auth_login_failed_total",
    "Failed password sign-ins by reason (the user.login_failed event's reasons, plus "
    "throttled); the client sees one 401 for unknown_email, no_password, wrong_password "
    "and inactive.",
    ["reason"],
)
LOGIN_DURATION = Histogram(
    "auth_login_duration_seconds",
    "Duration of the whole password sign-in service call (throttle check, Argon2, tokens), "
    "every outcome.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0),
)
REGISTRATIONS = Counter(
    "auth_registrations_total",
    "Password registrations by outcome: created (new account), existing_email (the address "
    "already has an account; the client gets the same 202), invalid_password (400).",
    ["outcome"],
)
EMAIL_VERIFICATIONS = Counter(
    "auth_email_verifications_total",
    "Email verification attempts: verified, already_verified (valid token, address verified "
    "meanwhile), invalid_token (unknown, used, expired or superseded token).",
    ["result"],
)
TWO_FACTOR_CHALLENGES = Counter(
    "auth_2fa_challenges_total",
    "2FA login challenges issued (a right first factor, password or Google, for an account "
    "with 2FA).",
)
TWO_FACTOR_VERIFICATIONS = Counter(
    "auth_2fa_verifications_total",
    "Codes presented to POST login/2fa: success, invalid_code (wrong or replayed), "
    "challenge_expired (unknown, expired, used or exhausted challenge), throttled (the "
    "account's budget of wrong codes is spent).",
    ["result"],
)
TWO_FACTOR_OPERATIONS = ("login", "disable", "recovery_codes")
TWO_FACTOR_BUDGET_REFUSALS = Counter(
    "auth_2fa_budget_refusals_total",
    "Second-factor codes refused with 429 because the account's budget of wrong codes "
    "(TWO_FACTOR_FAILURE_LIMIT per TWO_FACTOR_FAILURE_WINDOW_SECONDS) is spent, by operation: "
    "login (POST login/2fa), disable (POST 2fa/disable), recovery_codes "
    "(POST 2fa/recovery-codes).",
    ["operation"],
)
TOKENS_ISSUED = Counter(
    "auth_tokens_issued_total",
    "Tokens minted, by kind (access, refresh): one of each per sign-in and per rotation.",
    ["kind"],
)
TOKEN_REFRESHES = Counter(
    "auth_token_refresh_total",
    "Refresh-token rotations: success, invalid (unknown, malformed, expired, revoked, "
    "inactive user), reuse (a used token again: family revoked), cutoff (session started "
    "before a sign-out-everywhere: family revoked).",
    ["result"],
)
REFRESH_TOKEN_REUSE = Counter(
    "auth_refresh_token_reuse_total",
    "Refresh-token reuse detected: a rotated token presented again; its session was revoked.",
)
LOGOUTS = Counter(
    "auth_logouts_total",
    "Sessions ended by logout (idempotent repeats and unknown tokens are not counted).",
)
SELLER_APPLICATIONS = Counter(
    "auth_seller_applications_total",
    "Seller applications by transition: submitted, approved, rejected.",
    ["status"],
)
JWT_VALIDATION_RESULTS = (
    "valid",
    "malformed",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "missing_claim",
    "wrong_token_use",
    "unknown_token",
    "revoked",
    "inactive_user",
)
JWT_VALIDATIONS = Counter(
    "auth_jwt_validation_total",
    "Access tokens introspected by the internal validate-token endpoint: valid, or why not "
    "(tokens.exceptions.InvalidAccessToken reasons).",
    ["result"],
)
INTERNAL_API_REQUESTS = Counter(
    "auth_internal_api_requests_total",
    "Requests to the internal API (/internal/auth/) by caller (the configured caller name of "
    "INTERNAL_API_KEYS; anonymous without a valid key) and HTTP status code.",
    ["caller", "status"],
)
ANONYMOUS_CALLER = "anonymous"

for _status, _requires_2fa in (("success", "false"), ("success", "true"), ("failure", "false")):
    LOGINS.labels(status=_status, requires_2fa=_requires_2fa)
for _reason in LOGIN_FAILURE_REASONS:
    LOGIN_FAILURES.labels(reason=_reason)
for _outcome in ("created", "existing_email", "invalid_password"):
    REGISTRATIONS.labels(outcome=_outcome)
for _result in ("verified", "already_verified", "invalid_token"):
    EMAIL_VERIFICATIONS.labels(result=_result)
for _result in ("success", "invalid_code", "challenge_expired", "throttled"):
    TWO_FACTOR_VERIFICATIONS.labels(result=_result)
for _operation in TWO_FACTOR_OPERATIONS:
    TWO_FACTOR_BUDGET_REFUSALS.labels(operation=_operation)
for _kind in ("access", "refresh"):
    TOKENS_ISSUED.labels(kind=_kind)
for _result in ("success", "invalid", "reuse", "cutoff"):
    TOKEN_REFRESHES.labels(result=_result)
for _status in ("submitted", "approved", "rejected"):
    SELLER_APPLICATIONS.labels(status=_status)
for _result in JWT_VALIDATION_RESULTS:
    JWT_VALIDATIONS.labels(result=_result)


def init_internal_callers(callers: Iterable[str]) -> None:
    """Start each configured internal caller's ``200`` series at 0 (called at app start)."""
    for caller in callers:
        INTERNAL_API_REQUESTS.labels(caller=caller, status="200")


# --- scrape-time gauges from the database ----------------------------------------------------


class DatabaseGaugeCollector(Collector):
    """Gauges computed from the database at each scrape (one cheap, indexed query each).

    Not registered anywhere: whoever serves ``/metrics`` registers the instances of
    :func:`scrape_time_collectors`. Values come from the database, not from process memory,
    so they are the same whichever process answers (no multiprocess handling needed). A
    failing query is logged and its gauge left out of that scrape; the rest still appear.
    """

    def describe(self) -> list[Metric]:
        # Without describe(), registering would call collect() -- a database query at import.
        return [GaugeMetricFamily(name, documentation) for name, documentation, _ in self._gauges()]

    def collect(self) -> Iterator[Metric]:
        for name, documentation, read in self._gauges():
            try:
                value = read()
            except Exception:  # a scrape boundary: one failing query must not empty the scrape
                log.exception(
                    "metric query failed; gauge omitted from this scrape", extra={"metric": name}
                )
                continue
            yield GaugeMetricFamily(name, documentation, value=value)

    @staticmethod
    def _gauges() -> list[tuple[str, str, Callable[[], float]]]:
        from auth_backend.events.selectors import (
            oldest_unpublished_occurred_at,
            unpublished_event_count,
        )
        from auth_backend.sellers.selectors import pending_application_count
        from auth_backend.tokens.selectors import active_session_count

        def oldest_unpublished_age() -> float:
            oldest = oldest_unpublished_occurred_at()
            if oldest is None:
                return 0.0
            return max((timezone.now() - oldest).total_seconds(), 0.0)

        return [
            (
                "auth_seller_applications_pending",
                "Seller applications waiting for a staff decision.",
                pending_application_count,
            ),
            (
                "auth_active_sessions",
                "Live sign-in sessions: refresh-token families not revoked whose current "
                "refresh token has not expired.",
                active_session_count,
            ),
            (
                "auth_outbox_backlog",
                "Outbox events not yet published to the event stream by the relay.",
                unpublished_event_count,
            ),
            (
                "auth_outbox_oldest_unpublished_age_seconds",
                "Age of the oldest unpublished outbox event; 0 when none waits.",
                oldest_unpublished_age,
            ),
        ]


# --- certificates the backend loads ----------------------------------------------------------

# The TLS files gunicorn loads (backend/gunicorn.conf.py, backend/docs/tls.md), by the role
# they play: its server certificate (and chain) and the CA a client certificate must chain to.
CERTIFICATE_FILES = {"server": "GUNICORN_CERTFILE", "client_ca": "GUNICORN_CA_CERTS"}
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", flags=re.DOTALL
)


def certificate_expiries(pem: bytes) -> list[tuple[str, float]]:
    """(subject, notAfter as epoch seconds) of every certificate in a PEM file, in order."""
    certificates = (
        x509.load_pem_x509_certificate(m.group(0)) for m in _PEM_CERTIFICATE.finditer(pem)
    )
    return [(c.subject.rfc4514_string(), c.not_valid_after_utc.timestamp()) for c in certificates]


class CertificateExpiryCollector(Collector):
    """``auth_certificate_expiry_timestamp_seconds{certificate, subject}``: when each
    certificate of the TLS files gunicorn loads stops being valid. The files are read at each
    scrape, so a certificate renewed on disk shows at once (gunicorn loads it on restart); a
    file that cannot be read or parsed is logged and left out of that scrape."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)  # role -> path

    @classmethod
    def from_environment(cls) -> CertificateExpiryCollector:
        return cls(
            {
                role: path
                for role, name in CERTIFICATE_FILES.items()
                if (path := os.environ.get(name))
            }
        )

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for role, path in self.files.items():
            try:
                expiries = certificate_expiries(Path(path).read_bytes())
            except (OSError, ValueError):  # unreadable, or not a certificate: say which
                log.exception(
                    "certificate not readable; expiry omitted from this scrape",
                    extra={
                        "metric": "auth_certificate_expiry_timestamp_seconds",
                        "certificate": role,
                    },
                )
                continue
            for subject, not_after in expiries:
                family.add_metric([role, subject], not_after)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "auth_certificate_expiry_timestamp_seconds",
            "When each certificate of the TLS files the backend loads expires (notAfter, "
            "Unix seconds), by role (server: GUNICORN_CERTFILE, client_ca: GUNICORN_CA_CERTS).",
            labels=["certificate", "subject"],
        )


def scrape_time_collectors() -> list[Collector]:
    """Collectors of values read at scrape time (the database, the certificate files), for
    the metrics view."""
    return [DatabaseGaugeCollector(), CertificateExpiryCollector.from_environment()]
