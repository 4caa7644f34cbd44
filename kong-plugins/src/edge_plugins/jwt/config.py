"""The edge-jwt configuration, validated once per plugin instance.

Kong hands a plugin its config as a plain dict in which unset optional fields are *absent*
(or null, depending on the path), so every field is read with ``.get`` and falls back to its
default in :mod:`edge_plugins.jwt.schema`, the table Kong's schema is built from.
Everything that could make validation weaker than intended is refused here, at
``StartInstance``, instead of being discovered on a request:

* ``none`` is never an algorithm, whatever the configuration says;
* HS* (shared secret) algorithms are refused unless *every* key is an inline ``oct`` JWK:
  with an RSA/EC public key, HS256 turns the public key into a forgeable secret (the
  classic algorithm-confusion attack), and a remote JWKS must never carry secrets;
* ``assertion_ttl_seconds`` may not exceed 60 (the backend rejects longer assertions);
* at least one key source, an issuer and an audience are required: a token for another
  service must never be accepted here (RFC 8725 §3.9).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_plugins.jwt import schema
from edge_plugins.jwt.errors import ConfigError
from edge_plugins.jwt.keys import InvalidKey, static_keys
from edge_plugins.jwt.schema import FIELDS
from edge_plugins.kong_schema import Field

SYMMETRIC_ALGORITHMS = frozenset(schema.SYMMETRIC_ALGORITHMS)
SUPPORTED_ALGORITHMS = frozenset(FIELDS["algorithms"].choices)
# The Kong image's key; kong.yml may name another through Kong's env vault, and a reference
# that resolves to nothing arrives as "" (kong/db/schema/init.lua), which means this one.
DEFAULT_SIGNING_KEY_FILE = "/usr/local/kong/keys/gateway-ed25519.pem"


@dataclass(frozen=True)
class JwtConfig:
    """One plugin instance's configuration (see the module docstring for the rules)."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway_seconds: int
    max_lifetime_seconds: int | None
    required_claims: tuple[str, ...]
    jwks_uri: str | None
    jwks: dict[str, Any] | None
    public_keys_pem: tuple[str, ...]
    header_names: tuple[str, ...]
    cookie_names: tuple[str, ...]
    query_param_names: tuple[str, ...]
    required_scopes: tuple[str, ...]
    scopes_match: str
    required_roles: tuple[str, ...]
    roles_match: str
    optional: bool
    run_on_preflight: bool
    assertion_audience: str
    assertion_issuer: str
    assertion_signing_key_file: str
    assertion_ttl_seconds: int
    revocation_redis_url: str | None
    revocation_channel: str
    failure_policy: str
    max_token_bytes: int
    realm: str
    revocation_key_prefix: str = FIELDS["revocation_key_prefix"].default
    jwks_refetch_interval_seconds: int = FIELDS["jwks_refetch_interval_seconds"].default

    @classmethod
    def from_kong(cls, conf: Mapping[str, Any]) -> JwtConfig:
        """Validate Kong's config dict; raises :class:`ConfigError` with the first problem."""
        algorithms = _algorithms(conf.get("algorithms"))
        jwks = _inline_jwks(conf.get("jwks"))
        pems = _strings(conf, "public_keys_pem")
        jwks_uri = _optional_str(conf, "jwks_uri")
        if jwks_uri is not None and not jwks_uri.startswith(("https://", "http://")):
            raise ConfigError("jwks_uri must be an http(s) URL")
        if jwks_uri is None and jwks is None and not pems:
            raise ConfigError("one key source is required: jwks_uri, jwks or public_keys_pem")
        _check_symmetric(algorithms, jwks_uri=jwks_uri, jwks=jwks, pems=pems)
        try:  # parse now: a bad inline key must fail StartInstance, not a request
            static_keys(jwks, pems)
        except InvalidKey as exc:
            raise ConfigError(f"invalid inline key: {exc}") from None

        issuer = _optional_str(conf, "issuer")
        if issuer is None:
            raise ConfigError("issuer is required")
        audiences = _strings(conf, "audiences")
        if not audiences:
            raise ConfigError("audiences must name at least one audience")
        assertion_audience = _optional_str(conf, "assertion_audience")
        if assertion_audience is None:
            raise ConfigError("assertion_audience (the upstream service name) is required")
        key_file = (
            _optional_str(conf, "assertion_signing_key_file")
            or _optional_str(conf, "assertion_signing_key")
            or DEFAULT_SIGNING_KEY_FILE
        )
        realm = _text(conf, FIELDS["realm"])
        if any(ch in realm for ch in '"\\') or not realm.isprintable():
            raise ConfigError("realm may not contain quotes, backslashes or control characters")

        return cls(
            issuer=issuer,
            audiences=audiences,
            algorithms=algorithms,
            leeway_seconds=_int(conf, FIELDS["leeway_seconds"]),
            max_lifetime_seconds=_optional_int(conf, FIELDS["max_lifetime_seconds"]),
            required_claims=_strings(conf, "required_claims"),
            jwks_uri=jwks_uri,
            jwks=jwks,
            public_keys_pem=pems,
            header_names=_names(conf, FIELDS["header_names"]),
            cookie_names=_strings(conf, "cookie_names"),
            query_param_names=_strings(conf, "query_param_names"),
            required_scopes=_strings(conf, "required_scopes"),
            scopes_match=_choice(conf, FIELDS["scopes_match"]),
            required_roles=_strings(conf, "required_roles"),
            roles_match=_choice(conf, FIELDS["roles_match"]),
            optional=_bool(conf, FIELDS["optional"]),
            run_on_preflight=_bool(conf, FIELDS["run_on_preflight"]),
            assertion_audience=assertion_audience,
            assertion_issuer=_text(conf, FIELDS["assertion_issuer"]),
            assertion_signing_key_file=key_file,
            assertion_ttl_seconds=_int(conf, FIELDS["assertion_ttl_seconds"]),
            revocation_redis_url=_optional_str(conf, "revocation_redis_url"),
            revocation_channel=_text(conf, FIELDS["revocation_channel"]),
            failure_policy=_choice(conf, FIELDS["failure_policy"]),
            max_token_bytes=_int(conf, FIELDS["max_token_bytes"]),
            realm=realm,
            revocation_key_prefix=_text(conf, FIELDS["revocation_key_prefix"]),
            jwks_refetch_interval_seconds=_int(conf, FIELDS["jwks_refetch_interval_seconds"]),
        )

    def __hash__(self) -> int:
        """Hashable despite the inline JWKS dict (hashed through its canonical JSON)."""
        return hash(
            tuple(
                self.jwks_json if name == "jwks" else getattr(self, name)
                for name in self.__dataclass_fields__
            )
        )

    @property
    def jwks_json(self) -> str | None:
        """The inline JWKS, canonically serialised (hashable, for process-wide caches)."""
        return None if self.jwks is None else json.dumps(self.jwks, sort_keys=True)


# --- field readers -----------------------------------------------------------------------


def _optional_str(conf: Mapping[str, Any], name: str) -> str | None:
    value = conf.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    value = value.strip()
    return value or None


def _strings(conf: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = conf.get(name)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be an array of strings")
    items = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{name} must contain non-empty strings")
        if item.strip() not in items:
            items.append(item.strip())
    return tuple(items)


def _text(conf: Mapping[str, Any], field: Field) -> str:
    """A string setting, its default when unset or blank."""
    return _optional_str(conf, field.name) or field.default


def _names(conf: Mapping[str, Any], field: Field) -> tuple[str, ...]:
    """Header names: lower-case, as Kong's header multimap keys are."""
    names = tuple(dict.fromkeys(n.lower() for n in _strings(conf, field.name)))
    return names or field.default


def _int(conf: Mapping[str, Any], field: Field) -> int:
    value = conf.get(field.name)
    if value is None:
        return int(field.default)
    return _bounded(field, value)


def _optional_int(conf: Mapping[str, Any], field: Field) -> int | None:
    value = conf.get(field.name)
    return None if value is None else _bounded(field, value)


def _bounded(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{field.name} must be an integer")
    if not field.low <= value <= field.high:
        raise ConfigError(f"{field.name} must be between {field.low} and {field.high}")
    return int(value)


def _bool(conf: Mapping[str, Any], field: Field) -> bool:
    value = conf.get(field.name)
    if value is None:
        return bool(field.default)
    if not isinstance(value, bool):
        raise ConfigError(f"{field.name} must be a boolean")
    return value


def _choice(conf: Mapping[str, Any], field: Field) -> str:
    value = _text(conf, field)
    if value not in field.choices:
        raise ConfigError(f"{field.name} must be one of {', '.join(field.choices)}")
    return value


def _algorithms(value: Any) -> tuple[str, ...]:
    default: tuple[str, ...] = FIELDS["algorithms"].default
    if value is None:
        return default
    algorithms = _strings({"algorithms": value}, "algorithms")
    if not algorithms:
        return default
    for alg in algorithms:
        if alg.lower() == "none":
            raise ConfigError('algorithm "none" is never allowed')
        if alg not in SUPPORTED_ALGORITHMS:
            raise ConfigError(f"unsupported algorithm {alg!r}")
    return algorithms


def _inline_jwks(value: Any) -> dict[str, Any] | None:
    """An inline JWKS given as an object or as its JSON text; a lone JWK is accepted too."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError("jwks must be a JSON Web Key Set") from None
    if not isinstance(value, Mapping):
        raise ConfigError("jwks must be a JSON Web Key Set")
    if "kty" in value:
        value = {"keys": [dict(value)]}
    keys = value.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, Mapping) for k in keys):
        raise ConfigError("jwks must have a non-empty 'keys' array")
    return {"keys": [dict(k) for k in keys]}


def _check_symmetric(
    algorithms: tuple[str, ...],
    *,
    jwks_uri: str | None,
    jwks: dict[str, Any] | None,
    pems: tuple[str, ...],
) -> None:
    symmetric = [a for a in algorithms if a in SYMMETRIC_ALGORITHMS]
    if not symmetric:
        return
    if len(symmetric) != len(algorithms):
        raise ConfigError("HS* algorithms cannot be mixed with asymmetric ones")
    if jwks_uri is not None or pems:
        raise ConfigError(
            "HS* algorithms are refused with public keys or a remote JWKS (algorithm confusion)"
        )
    if jwks is None or any(k.get("kty") != "oct" for k in jwks["keys"]):
        raise ConfigError("HS* algorithms need inline 'oct' keys only")
