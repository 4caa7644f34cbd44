"""Every edge-jwt setting, once: Kong's schema (``edge_jwt.Schema``), the defaults and
limits :class:`~edge_plugins.jwt.config.JwtConfig` applies, and docs/plugins/edge-jwt.md.

A record of an external plugin cannot carry entity checks, so what needs several fields at
once (a key source is set; HS* only with inline ``oct`` keys) is checked by
``JwtConfig.from_kong``.
"""

from __future__ import annotations

from edge_plugins.kong_schema import Field, FieldTable, string_items

ASYMMETRIC_ALGORITHMS = (
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
)
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")
MATCH_MODES = ("any", "all")
FAILURE_POLICIES = ("closed", "open")


def _strings(
    name: str, description: str, default: tuple[str, ...] = (), len_min: int | None = None
) -> Field:
    return Field(
        name, "array", description, default=default, len_min=len_min, elements=string_items()
    )


FIELDS = FieldTable(
    # Tokens: who issues them, for whom, signed how.
    Field(
        "issuer",
        "string",
        "The token issuer (`iss`) accepted; any other issuer is refused.",
        required=True,
        len_min=1,
    ),
    Field(
        "audiences",
        "array",
        "Accepted audiences (`aud`): a token must name at least one of them (RFC 8725 §3.9).",
        required=True,
        len_min=1,
        elements=string_items(),
    ),
    Field(
        "algorithms",
        "array",
        "Signature algorithms accepted (`none` never is). HS* only with inline `oct` keys and "
        "never mixed with asymmetric ones (algorithm confusion).",
        default=("RS256",),
        len_min=1,
        elements=string_items(one_of=ASYMMETRIC_ALGORITHMS + SYMMETRIC_ALGORITHMS),
    ),
    Field(
        "leeway_seconds",
        "integer",
        "Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.",
        default=30,
        between=(0, 300),
    ),
    Field(
        "max_lifetime_seconds",
        "integer",
        "Longest `exp - iat` accepted, in seconds; unset: no limit.",
        between=(1, 366 * 86400),
    ),
    _strings("required_claims", "Claims a token must carry besides the ones always required."),
    # Key sources (at least one): a remote JWKS, an inline JWKS (JSON text), PEM public keys.
    Field(
        "jwks_uri",
        "string",
        "URL of the issuer's JWKS, fetched lazily and kept fresh per Cache-Control.",
        match="^https?://",
    ),
    Field(
        "jwks",
        "string",
        "An inline JSON Web Key Set (JSON text); the only place shared `oct` secrets may be.",
        len_min=2,
    ),
    _strings("public_keys_pem", "PEM public keys or certificates that may verify tokens."),
    Field(
        "jwks_refetch_interval_seconds",
        "integer",
        "Least time between two refetches of `jwks_uri` caused by an unknown `kid`, in "
        "seconds: a flood of bogus kids cannot hammer the issuer.",
        default=30,
        between=(1, 3600),
    ),
    # Where the token is looked for; more than one distinct token is a 401.
    _strings(
        "header_names",
        "Request headers that may carry the token (`Bearer` scheme, or the bare token in a "
        "dedicated header).",
        default=("authorization",),
        len_min=1,
    ),
    _strings("cookie_names", "Cookies that may carry the token."),
    _strings("query_param_names", "Query parameters that may carry the token."),
    # Per-route policy.
    _strings("required_scopes", "Scopes (the `scope` claim) this route requires; 403 if missing."),
    Field(
        "scopes_match",
        "string",
        "Whether `any` or `all` of `required_scopes` must be granted.",
        default="all",
        one_of=MATCH_MODES,
    ),
    _strings("required_roles", "Roles (the `roles` claim) this route requires; 403 if missing."),
    Field(
        "roles_match",
        "string",
        "Whether `any` or `all` of `required_roles` must be granted.",
        default="all",
        one_of=MATCH_MODES,
    ),
    Field(
        "optional",
        "boolean",
        "Let requests without a token through as anonymous (identity headers still stripped).",
        default=False,
    ),
    Field(
        "run_on_preflight",
        "boolean",
        "Require a token on CORS preflight requests too; off lets them through untouched.",
        default=True,
    ),
    # Identity sent upstream: X-User-* and the gateway-signed X-Identity-Assertion.
    Field(
        "assertion_audience",
        "string",
        "The `aud` of the identity assertion: the upstream service's name.",
        required=True,
        len_min=1,
    ),
    Field(
        "assertion_issuer",
        "string",
        "The `iss` of the identity assertion.",
        default="kong-edge",
        len_min=1,
    ),
    Field(
        "assertion_signing_key_file",
        "string",
        "Ed25519 private key (PEM file) that signs the identity assertion; unset or empty: "
        "the Kong image's /usr/local/kong/keys/gateway-ed25519.pem.",
        len_min=1,
        referenceable=True,
    ),
    Field(
        "assertion_ttl_seconds",
        "integer",
        "Lifetime of the identity assertion, in seconds (the backend refuses longer ones).",
        default=30,
        between=(1, 60),
    ),
    # Revocations announced by the backend (backend/docs/revocation.md).
    Field(
        "revocation_redis_url",
        "string",
        "Redis the backend announces revocations on; unset: no revocation checks.",
        match="^rediss?://",
    ),
    Field(
        "revocation_channel",
        "string",
        "Redis pub/sub channel of revocation announcements.",
        default="auth.revocations",
        len_min=1,
    ),
    Field(
        "revocation_key_prefix",
        "string",
        "Prefix of the Redis keys that list revoked tokens and subjects.",
        default="auth.revoked",
        len_min=1,
    ),
    Field(
        "failure_policy",
        "string",
        "What an infrastructure fault (no usable key) does: `closed` answers 503 with "
        "Retry-After, `open` lets the request through as anonymous.",
        default="closed",
        one_of=FAILURE_POLICIES,
    ),
    Field(
        "max_token_bytes",
        "integer",
        "Largest token accepted, in bytes; larger ones are refused before any parsing.",
        default=8192,
        between=(256, 65536),
    ),
    Field(
        "realm",
        "string",
        "The realm of the `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).",
        default="api",
        len_min=1,
        not_match='["\\]',
    ),
)
