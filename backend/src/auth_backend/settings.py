"""Django settings for the auth backend, read from environment variables.

Environment (all optional except where noted):

``DJANGO_SECRET_KEY``
    Required when DEBUG is off (the process refuses to start without it). With DEBUG on and
    no value, a random key is generated once into ``backend/.keys/secret_key`` (git-ignored).
``DJANGO_DEBUG``
    ``1``/``true``/``yes``/``on`` to enable; default off.
``DJANGO_ALLOWED_HOSTS``
    Comma-separated ``Host`` values to serve; default ``localhost,127.0.0.1,[::1]``. Add the
    name the gateway uses for the upstream (e.g. ``backend``).
``DATABASE_URL``
    Default ``sqlite:///<backend>/db.sqlite3``; ``postgres://user:pass@host:5432/db`` selects
    PostgreSQL (parsed by dj-database-url).
``DATABASE_CONN_MAX_AGE``
    Seconds to keep database connections open (health-checked before reuse); default 60.
``DATABASE_CONNECT_TIMEOUT``
    PostgreSQL connect timeout in seconds; default 5.
``SERVICE_NAME``
    This service's name: in every log line, and the ``aud`` the gateway's identity
    assertions must name (:mod:`auth_backend.identity.assertion`); default ``auth-backend``.
``LOG_LEVEL``
    Root log level; default ``INFO``.
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and other ``OTEL_*``
    OpenTelemetry tracing, off unless an endpoint is set; read by
    :mod:`auth_backend.core.tracing` (not here), see ``backend/docs/tracing.md``.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from auth_backend.core.env import (
    database_config,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_str,
    load_secret_key,
)

# backend/ (this file is backend/src/auth_backend/settings.py)
BASE_DIR = Path(__file__).resolve().parents[2]

SERVICE_NAME = env_str("SERVICE_NAME", "auth-backend") or "auth-backend"

DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = load_secret_key(debug=DEBUG, key_file=BASE_DIR / ".keys" / "secret_key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auth_backend.health",
    "auth_backend.accounts",
    "auth_backend.tokens",
    "auth_backend.events",
    "auth_backend.sellers",
]
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",  # Argon2id
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

MIDDLEWARE = [
    # Outermost: counts and times every request with the status the client gets.
    "auth_backend.core.http_metrics.HttpMetricsMiddleware",
    # The listener the request arrived on picks its URLconf (public, internal, metrics).
    "auth_backend.core.listeners.ListenerMiddleware",
    "auth_backend.core.request_id.RequestIdMiddleware",
    "auth_backend.core.errors.JsonErrorMiddleware",
    # A path Kong routes one way and Django resolves another is refused (core/paths.py).
    "auth_backend.core.paths.EncodedSeparatorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (Swagger UI, admin) from the app directories, without collectstatic.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # DRF views are CSRF-exempt (no cookie auth: identity comes from signed gateway headers);
    # this protects any cookie-authenticated plain Django view added later.
    "django.middleware.csrf.CsrfViewMiddleware",
    # Sessions, auth and messages serve the Django admin only (staff seller decisions).
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "auth_backend.identity.authentication.GatewayIdentityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The public listener's routes; the internal and metrics listeners have URLconfs of their own
# (auth_backend.core.listeners).
ROOT_URLCONF = "auth_backend.urls"
WSGI_APPLICATION = "auth_backend.wsgi.application"
# Templates only for the Django admin (staff decisions) and the Swagger UI page.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
# Under /api/auth/ so the gateway's route serves the Swagger UI's assets too.
STATIC_URL = "/api/auth/static/"
WHITENOISE_USE_FINDERS = True
# collectstatic target for images that pre-build assets; unset, files come from the apps.
STATIC_ROOT = env_str("STATIC_ROOT") or None

# Routes are declared with and without the trailing slash; never redirect behind the gateway.
APPEND_SLASH = False

DATABASES = {
    "default": database_config(
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        connect_timeout=env_int("DATABASE_CONNECT_TIMEOUT", 5),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Request bodies: every API body is a small JSON object (the largest, a Google ID token or
# a 1024-character password, is a few KB). Django's bound for request.body (default 2.5 MB)
# is cut to 64 KB, and JSON may nest JSON_MAX_DEPTH arrays/objects deep; beyond either the
# answer is 400 parse_error (core/parsers.py, core/errors.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024)
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 32)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bounded in size and depth, errors without Python's text (core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["auth_backend.core.parsers.BoundedJSONParser"],
    # Identity comes only from the gateway's signed assertion (docs/identity-assertion.md);
    # every view requires it unless it opts out explicitly (public endpoints, health).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "auth_backend.identity.authentication.GatewayAssertionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
    "EXCEPTION_HANDLER": "auth_backend.core.errors.drf_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

CSRF_FAILURE_VIEW = "auth_backend.core.errors.csrf_failure"
# Clients reach the service over HTTPS through the gateway.
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG

# TLS terminates at the gateway; the backend listens on an internal plain-HTTP port (8080)
# that only the gateway reaches. Redirecting to HTTPS or sending HSTS is the edge's job.
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008"]

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper() or "INFO"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "auth_backend.core.logs.JsonFormatter", "service": SERVICE_NAME},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Drop Django's default console/mail_admins handlers; everything goes to the root.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}

# --- Email ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@auth.local")

# --- Redis (events, revocations) -------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
EVENTS_STREAM = env_str("EVENTS_STREAM", "auth.events")
REVOCATIONS_CHANNEL = env_str("REVOCATIONS_CHANNEL", "auth.revocations")

# --- Tokens (backend/docs/revocation.md) ---------------------------------------------------
JWT_ISSUER = env_str("JWT_ISSUER", "https://auth.local")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "marketplace-api")
ACCESS_TOKEN_TTL_SECONDS = env_int("ACCESS_TOKEN_TTL_SECONDS", 900)
REFRESH_TOKEN_TTL_SECONDS = env_int("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600)

# --- Identity from the gateway (docs/identity-assertion.md) --------------------------------
# The gateway's public JWKS: a file path or an http(s) URL.
GATEWAY_JWKS = env_str("GATEWAY_JWKS", str(BASE_DIR / ".keys" / "gateway-jwks.json"))
GATEWAY_ISSUER = env_str("GATEWAY_ISSUER", "kong-edge")
IDENTITY_ASSERTION_LEEWAY_SECONDS = env_int("IDENTITY_ASSERTION_LEEWAY_SECONDS", 5)
# Assertion ids already used, on REDIS_URL: keys <prefix>:seen:<assertion_id> (identity.store).
IDENTITY_ASSERTION_KEY_PREFIX = (
    env_str("IDENTITY_ASSERTION_KEY_PREFIX", "auth.assertion") or "auth.assertion"
)

# --- Google sign-in ------------------------------------------------------------------------
GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID", "")
GOOGLE_JWKS_URL = env_str("GOOGLE_JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs")

# --- OpenAPI -------------------------------------------------------------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Auth backend API",
    "DESCRIPTION": "Accounts, tokens and seller applications behind the Kong edge.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"

# --- Event relay and readiness checks (events / health) -------------------------------------
# The relay (`manage.py relay_outbox`, backend/docs/events.md) trims the stream with
# `XADD … MAXLEN ~ N`; 0 disables trimming.
EVENTS_STREAM_MAXLEN = env_int("EVENTS_STREAM_MAXLEN", 100_000)
EVENTS_RELAY_BATCH_SIZE = env_int("EVENTS_RELAY_BATCH_SIZE", 100)
EVENTS_RELAY_INTERVAL_MS = env_int("EVENTS_RELAY_INTERVAL_MS", 1000)
EVENTS_REDIS_TIMEOUT_MS = env_int("EVENTS_REDIS_TIMEOUT_MS", 2000)
# Per-check timeout of /api/auth/health/ready/ for Redis and the event bus, kept within
# 50..1000 ms so a hung dependency cannot stall the probe.
HEALTH_CHECK_TIMEOUT_MS = min(max(env_int("HEALTH_CHECK_TIMEOUT_MS", 500), 50), 1000)

# --- Tokens app: signing, revocation, Google sign-in (auth_backend.tokens) -------------------
# Algorithm of newly generated access-token signing keys: RS256 (default) or ES256.
ACCESS_TOKEN_ALGORITHM = env_str("ACCESS_TOKEN_ALGORITHM", "RS256") or "RS256"
# Cache-Control max-age of /api/auth/.well-known/jwks.json.
JWKS_MAX_AGE_SECONDS = env_int("JWKS_MAX_AGE_SECONDS", 300)
# Redis keys mirroring revocations for edges that (re)connect after a message was sent
# (docs/revocation.md), and the socket timeout of revocation publishing.
REVOCATIONS_KEY_PREFIX = env_str("REVOCATIONS_KEY_PREFIX", "auth.revoked") or "auth.revoked"
REVOCATIONS_REDIS_TIMEOUT_MS = env_int("REVOCATIONS_REDIS_TIMEOUT_MS", 500)
# How long Google's JWKS is cached, and the timeout of fetching it.
GOOGLE_JWKS_CACHE_SECONDS = env_int("GOOGLE_JWKS_CACHE_SECONDS", 3600)
GOOGLE_JWKS_TIMEOUT_SECONDS = env_int("GOOGLE_JWKS_TIMEOUT_SECONDS", 5)


# --- Internal API and OpenAPI (auth_backend.internal) ---------------------------------------
# .env:
#   # Service API keys for /internal/auth/: comma-separated caller:sha256hex pairs. Only the
#   # SHA-256 of each key is configured; `manage.py hash_api_key <caller>` generates a key
#   # and prints its entry. A caller may have several entries (key rotation). Empty: every
#   # internal request is refused (401) and `manage.py check --deploy` warns.
#   INTERNAL_API_KEYS=orders:<sha256hex>,catalog:<sha256hex>
#   # Comma-separated server URLs in the public OpenAPI schema; default "/" (the origin that
#   # serves the schema, i.e. the gateway).
#   OPENAPI_SERVER_URLS=https://api.example.com
from auth_backend.internal.keys import parse_api_keys  # noqa: E402

# Installed for its management command (hash_api_key), system check and OpenAPI extensions.
INSTALLED_APPS.append("auth_backend.internal")
INTERNAL_API_KEYS = parse_api_keys(env_str("INTERNAL_API_KEYS"))

REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "auth_backend.core.openapi.AutoSchema"
SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": (
            "Accounts, tokens and seller applications behind the Kong edge. Clients call these "
            "endpoints through the gateway; protected ones need `Authorization: Bearer <access "
            "token>`, which the gateway validates before forwarding the caller's identity as a "
            "signed `X-Identity-Assertion`. Every path also answers without the trailing slash. "
            'Every error has one shape (`Error`): `{"error": {"code", "message", '
            '"details"}, "request_id"}`; branch on `error.code`.'
        ),
        "SERVERS": [{"url": url} for url in env_list("OPENAPI_SERVER_URLS", "/")],
        "TAGS": [
            {
                "name": "accounts",
                "description": "Registration, email verification, password reset.",
            },
            {
                "name": "tokens",
                "description": "Sign-in (password, 2FA, Google), token refresh, "
                "logout and the signing keys (JWKS).",
            },
            {"name": "profile", "description": "The caller's own profile."},
            {"name": "2fa", "description": "TOTP two-factor authentication."},
            {"name": "seller", "description": "Seller applications and staff decisions."},
            {"name": "health", "description": "Liveness and readiness probes."},
        ],
        # The public schema: /api/auth/ only (never /internal/ or /admin/).
        "PREPROCESSING_HOOKS": ["auth_backend.core.openapi.public_endpoints"],
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "auth_backend.core.openapi.postprocess_error_responses",
        ],
        "SCHEMA_PATH_PREFIX": r"/(api|internal)/auth/",
        # The schema and Swagger UI are public documents: run no authentication for them.
        "SERVE_AUTHENTICATION": [],
    }
)

# --- Accounts: one-time tokens, login challenges, TOTP (auth_backend.accounts) ---------------
# Lifetime of the emailed single-use tokens.
EMAIL_VERIFICATION_TOKEN_TTL_SECONDS = env_int("EMAIL_VERIFICATION_TOKEN_TTL_SECONDS", 24 * 3600)
PASSWORD_RESET_TOKEN_TTL_SECONDS = env_int("PASSWORD_RESET_TOKEN_TTL_SECONDS", 3600)
# At most one verification (or reset) email per address in this many seconds.
ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS = env_int("ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS", 60)
# Where register / resend-verification / password reset do their per-account work and send
# their emails (auth_backend.accounts.background): "thread" (a worker thread per process, so
# response times do not depend on whether the address has an account) or "inline".
ACCOUNT_BACKGROUND_MODE = env_str("ACCOUNT_BACKGROUND_MODE", "thread") or "thread"
if ACCOUNT_BACKGROUND_MODE not in {"thread", "inline"}:
    raise ImproperlyConfigured("ACCOUNT_BACKGROUND_MODE must be thread or inline.")
ACCOUNT_BACKGROUND_QUEUE_SIZE = env_int("ACCOUNT_BACKGROUND_QUEUE_SIZE", 1000)
# The 2FA step of a sign-in: lifetime of the challenge and wrong codes it survives.
LOGIN_CHALLENGE_TTL_SECONDS = env_int("LOGIN_CHALLENGE_TTL_SECONDS", 300)
LOGIN_CHALLENGE_MAX_ATTEMPTS = env_int("LOGIN_CHALLENGE_MAX_ATTEMPTS", 5)
# Wrong second-factor codes per account, across challenges, 2fa/disable and
# 2fa/recovery-codes, in a window that starts at the first (accounts/services/second_factor.py).
TWO_FACTOR_FAILURE_LIMIT = env_int("TWO_FACTOR_FAILURE_LIMIT", 10)
TWO_FACTOR_FAILURE_WINDOW_SECONDS = env_int("TWO_FACTOR_FAILURE_WINDOW_SECONDS", 900)
# Issuer shown by authenticator apps (otpauth:// URI).
TOTP_ISSUER = env_str("TOTP_ISSUER", "Marketplace") or "Marketplace"

# --- Accounts: per-account sign-in throttling in Redis (auth_backend.accounts.throttling) -----
# Failed password sign-ins per address: after LOGIN_THROTTLE_FAILURES from one client (or
# LOGIN_THROTTLE_ACCOUNT_FAILURES from any client) further attempts wait BASE * 2^n seconds,
# at most MAX; a success clears the counters. Redis unreachable: not throttled (fail open).
LOGIN_THROTTLE_ENABLED = env_bool("LOGIN_THROTTLE_ENABLED", default=True)
LOGIN_THROTTLE_FAILURES = env_int("LOGIN_THROTTLE_FAILURES", 5)
LOGIN_THROTTLE_ACCOUNT_FAILURES = env_int("LOGIN_THROTTLE_ACCOUNT_FAILURES", 20)
LOGIN_THROTTLE_BASE_DELAY_SECONDS = env_int("LOGIN_THROTTLE_BASE_DELAY_SECONDS", 1)
LOGIN_THROTTLE_MAX_DELAY_SECONDS = env_int("LOGIN_THROTTLE_MAX_DELAY_SECONDS", 900)
LOGIN_THROTTLE_WINDOW_SECONDS = env_int("LOGIN_THROTTLE_WINDOW_SECONDS", 900)
# A client that signed in to an account this recently is exempt from its account-wide limit.
LOGIN_THROTTLE_KNOWN_CLIENT_SECONDS = env_int("LOGIN_THROTTLE_KNOWN_CLIENT_SECONDS", 30 * 86400)
# Addresses/CIDRs whose X-Forwarded-For names the client (the gateway); empty: REMOTE_ADDR.
LOGIN_THROTTLE_TRUSTED_PROXIES = env_networks("LOGIN_THROTTLE_TRUSTED_PROXIES")
LOGIN_THROTTLE_REDIS_TIMEOUT_MS = env_int("LOGIN_THROTTLE_REDIS_TIMEOUT_MS", 100)
LOGIN_THROTTLE_KEY_PREFIX = (
    env_str("LOGIN_THROTTLE_KEY_PREFIX", "auth.login-throttle") or "auth.login-throttle"
)
