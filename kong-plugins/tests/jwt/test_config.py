"""JwtConfig.from_kong: safe defaults, and every unsafe configuration refused up front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_plugins.jwt.config import DEFAULT_SIGNING_KEY_FILE, JwtConfig
from edge_plugins.jwt.errors import ConfigError
from tests.support.edge_jwt import AUDIENCE, ISSUER, SERVICE, RsaKey, jwks_of, kong_conf


def _conf(key_file: Path, rsa_key: RsaKey, **overrides: Any) -> dict[str, Any]:
    base = {"jwks": jwks_of(rsa_key)}
    base.update(overrides)
    return kong_conf(key_file, **base)


def test_defaults_are_the_safe_ones(key_file: Path, rsa_key: RsaKey) -> None:
    config = JwtConfig.from_kong(_conf(key_file, rsa_key))
    assert config.issuer == ISSUER
    assert config.audiences == (AUDIENCE,)
    assert config.algorithms == ("RS256",)
    assert config.leeway_seconds == 30
    assert config.max_lifetime_seconds is None
    assert config.header_names == ("authorization",)
    assert config.cookie_names == () and config.query_param_names == ()
    assert config.scopes_match == "all" and config.roles_match == "all"
    assert config.optional is False
    assert config.run_on_preflight is True
    assert config.assertion_audience == SERVICE
    assert config.assertion_issuer == "kong-edge"
    assert config.assertion_ttl_seconds == 30
    assert config.revocation_redis_url is None
    assert config.revocation_channel == "auth.revocations"
    assert config.revocation_key_prefix == "auth.revoked"
    assert config.failure_policy == "closed"
    assert config.max_token_bytes == 8192
    assert config.realm == "api"
    assert config.jwks_refetch_interval_seconds == 30


def test_unset_fields_may_be_null_as_well_as_absent(key_file: Path, rsa_key: RsaKey) -> None:
    nulls = {
        name: None
        for name in (
            "algorithms",
            "leeway_seconds",
            "max_lifetime_seconds",
            "header_names",
            "cookie_names",
            "optional",
            "realm",
            "jwks_uri",
            "public_keys_pem",
            "revocation_redis_url",
        )
    }
    conf = {**_conf(key_file, rsa_key), **nulls}
    config = JwtConfig.from_kong(conf)
    assert config.algorithms == ("RS256",) and config.header_names == ("authorization",)


def test_inline_jwks_may_be_json_text_or_a_single_jwk(key_file: Path, rsa_key: RsaKey) -> None:
    as_text = JwtConfig.from_kong(_conf(key_file, rsa_key, jwks=json.dumps(jwks_of(rsa_key))))
    single = JwtConfig.from_kong(_conf(key_file, rsa_key, jwks=rsa_key.jwk))
    assert as_text.jwks == single.jwks == jwks_of(rsa_key)


def test_header_names_are_lower_cased(key_file: Path, rsa_key: RsaKey) -> None:
    config = JwtConfig.from_kong(
        _conf(key_file, rsa_key, header_names=["Authorization", "X-Access-Token"])
    )
    assert config.header_names == ("authorization", "x-access-token")


@pytest.mark.parametrize("algorithms", [["none"], ["RS256", "None"], ["NONE"]])
def test_alg_none_is_never_allowed(key_file: Path, rsa_key: RsaKey, algorithms: list[str]) -> None:
    with pytest.raises(ConfigError, match="none"):
        JwtConfig.from_kong(_conf(key_file, rsa_key, algorithms=algorithms))


def test_hs_algorithms_are_refused_with_asymmetric_keys(key_file: Path, rsa_key: RsaKey) -> None:
    with pytest.raises(ConfigError, match="HS"):
        JwtConfig.from_kong(_conf(key_file, rsa_key, algorithms=["HS256"]))
    with pytest.raises(ConfigError, match="HS"):
        JwtConfig.from_kong(
            kong_conf(key_file, public_keys_pem=[rsa_key.public_pem], algorithms=["HS256"])
        )
    with pytest.raises(ConfigError, match="HS"):
        JwtConfig.from_kong(
            kong_conf(key_file, jwks_uri="https://idp.test/jwks.json", algorithms=["HS256"])
        )
    with pytest.raises(ConfigError, match="mixed"):
        JwtConfig.from_kong(_conf(key_file, rsa_key, algorithms=["RS256", "HS256"]))


def test_hs_algorithms_are_allowed_with_inline_oct_keys_only(key_file: Path) -> None:
    oct_jwks = {"keys": [{"kty": "oct", "kid": "s1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}
    config = JwtConfig.from_kong(kong_conf(key_file, jwks=oct_jwks, algorithms=["HS256"]))
    assert config.algorithms == ("HS256",)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"issuer": None}, "issuer"),
        ({"audiences": []}, "audiences"),
        ({"assertion_audience": None}, "assertion_audience"),
        ({"jwks": None}, "key source"),
        ({"jwks_uri": "ftp://idp.test/jwks"}, "http"),
        ({"assertion_ttl_seconds": 61}, "assertion_ttl_seconds"),
        ({"assertion_ttl_seconds": 0}, "assertion_ttl_seconds"),
        ({"leeway_seconds": -1}, "leeway_seconds"),
        ({"leeway_seconds": 301}, "leeway_seconds"),
        ({"leeway_seconds": True}, "integer"),
        ({"max_token_bytes": 10}, "max_token_bytes"),
        ({"scopes_match": "some"}, "scopes_match"),
        ({"failure_policy": "maybe"}, "failure_policy"),
        ({"algorithms": ["XS256"]}, "unsupported"),
        ({"realm": 'api", error="x'}, "realm"),
        ({"optional": "yes"}, "boolean"),
        ({"required_scopes": "profile"}, "array"),
        ({"jwks": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}]}}, "private"),
        (
            {"public_keys_pem": ["-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"]},
            "PEM",
        ),
    ],
)
def test_unsafe_or_broken_configs_are_refused(
    key_file: Path, rsa_key: RsaKey, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        JwtConfig.from_kong(_conf(key_file, rsa_key, **overrides))


def test_weak_rsa_keys_are_refused_inline(key_file: Path) -> None:
    from tests.support.edge_jwt import new_rsa_key

    weak = new_rsa_key(bits=1024)
    with pytest.raises(ConfigError, match="2048"):
        JwtConfig.from_kong(kong_conf(key_file, jwks=jwks_of(weak)))


def test_legacy_assertion_signing_key_name_is_accepted(rsa_key: RsaKey, key_file: Path) -> None:
    conf = _conf(key_file, rsa_key)
    conf["assertion_signing_key"] = conf.pop("assertion_signing_key_file")
    assert JwtConfig.from_kong(conf).assertion_signing_key_file == str(key_file)


def test_configs_are_hashable_and_compare_by_value(key_file: Path, rsa_key: RsaKey) -> None:
    a = JwtConfig.from_kong(_conf(key_file, rsa_key))
    b = JwtConfig.from_kong(_conf(key_file, rsa_key))
    assert a == b and hash(a) == hash(b)
    assert len({a, b, JwtConfig.from_kong(_conf(key_file, rsa_key, optional=True))}) == 2


@pytest.mark.parametrize("unset", [None, ""])
def test_an_unset_signing_key_file_is_the_kong_images(
    key_file: Path, rsa_key: RsaKey, unset: str | None
) -> None:
    """``""`` is what an env-vault reference that resolved to nothing becomes
    (kong/db/schema/init.lua): the same as leaving the field out."""
    conf = _conf(key_file, rsa_key, assertion_signing_key_file=unset)
    assert JwtConfig.from_kong(conf).assertion_signing_key_file == DEFAULT_SIGNING_KEY_FILE
