"""Token verification: every rejection reason, at the core level."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import TokenRejected
from edge_plugins.jwt.key_manager import JwksManager
from edge_plugins.jwt.keys import static_keys
from edge_plugins.jwt.verify import verify_token
from tests.support.edge_jwt import (
    AUDIENCE,
    NOW,
    RsaKey,
    access_claims,
    jwks_of,
    make_config,
    mint,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: Any) -> str:
    return _b64(json.dumps(obj).encode())


@pytest.fixture
def config(key_file: Path, rsa_key: RsaKey) -> JwtConfig:
    return make_config(key_file, jwks=jwks_of(rsa_key))


def _reject(token: str, config: JwtConfig, keys: JwksManager, now: float = NOW) -> str:
    with pytest.raises(TokenRejected) as info:
        verify_token(token, config, keys, now)
    return info.value.reason


class TestValidation:
    def test_a_valid_backend_style_token(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        claims = verify_token(mint(rsa_key), config, static_manager, NOW)
        assert claims["sub"] and claims["token_use"] == "access"

    @pytest.mark.parametrize(
        "token",
        [
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            "a..c",
            ".b.c",
            _b64(b"not json") + ".e30.c2ln",
            _segment(["alg", "RS256"]) + ".e30.c2ln",
            _segment({"alg": "RS256"}) + ".e30.",
            _segment({"alg": 256}) + ".e30.c2ln",
            _segment({"alg": "RS256", "kid": 7}) + ".e30.c2ln",
            _segment({"alg": "RS256", "crit": ["exp"], "exp": 1}) + ".e30.c2ln",
            _segment({"alg": "RS256", "b64": False, "crit": ["b64"]}) + "..c2ln",
            "\u00e9.b.c",
        ],
    )
    def test_malformed(self, config: JwtConfig, static_manager: JwksManager, token: str) -> None:
        assert _reject(token, config, static_manager) == "malformed"

    def test_alg_none(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        for alg in ("none", "None", "NONE"):
            token = f"{_segment({'alg': alg, 'kid': rsa_key.kid})}.{_segment(access_claims())}."
            assert _reject(token, config, static_manager) == "alg_not_allowed"

    def test_hs256_signed_with_the_rsa_public_key(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        """The algorithm-confusion attack: the public key used as an HMAC secret."""
        header = _segment({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid})
        signing_input = f"{header}.{_segment(access_claims())}"
        mac = hmac.new(rsa_key.public_pem.encode(), signing_input.encode(), hashlib.sha256)
        token = f"{signing_input}.{_b64(mac.digest())}"
        assert _reject(token, config, static_manager) == "alg_not_allowed"

    def test_alg_is_pinned_to_the_key(self, key_file: Path, rsa_key: RsaKey) -> None:
        """Even an allowed alg fails when the key cannot do it (ES256 with an RSA key)."""
        config = make_config(key_file, jwks=jwks_of(rsa_key), algorithms=["RS256", "ES256"])
        keys = JwksManager(static=static_keys(jwks_of(rsa_key)))
        ec_key = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(access_claims(), ec_key, algorithm="ES256", headers={"kid": rsa_key.kid})
        assert _reject(token, config, keys) == "alg_mismatch"

    def test_alg_pinned_by_the_jwks_alg_member(self, key_file: Path, rsa_key: RsaKey) -> None:
        config = make_config(key_file, jwks=jwks_of(rsa_key), algorithms=["RS256", "PS256"])
        keys = JwksManager(static=static_keys(jwks_of(rsa_key)))  # jwk says alg RS256
        assert _reject(mint(rsa_key, alg="PS256"), config, keys) == "alg_mismatch"

    def test_unknown_kid(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        assert _reject(mint(rsa_key, kid="nope"), config, static_manager) == "unknown_kid"

    def test_kid_required_when_keys_have_kids(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        assert _reject(mint(rsa_key, kid=None), config, static_manager) == "missing_kid"

    def test_pem_keys_match_kidless_tokens_and_their_thumbprint(
        self, key_file: Path, rsa_key: RsaKey
    ) -> None:
        config = make_config(key_file, public_keys_pem=[rsa_key.public_pem])
        keys = JwksManager(static=static_keys(None, [rsa_key.public_pem]))
        assert verify_token(mint(rsa_key, kid=None), config, keys, NOW)
        assert verify_token(mint(rsa_key), config, keys, NOW)  # kid = RFC 7638 thumbprint

    def test_wrong_issuer(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        assert _reject(mint(rsa_key, iss="https://evil.test"), config, static_manager) == "issuer"

    def test_wrong_audience(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        assert _reject(mint(rsa_key, aud="other-api"), config, static_manager) == "audience"

    def test_any_configured_audience_matches(
        self, key_file: Path, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        config = make_config(key_file, jwks=jwks_of(rsa_key), audiences=["a", AUDIENCE])
        assert verify_token(mint(rsa_key, aud=["x", AUDIENCE]), config, static_manager, NOW)

    def test_expired_beyond_leeway(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        token = mint(rsa_key, iat=NOW - 900, nbf=NOW - 900, exp=NOW)
        assert verify_token(token, config, static_manager, NOW + 29)  # within the 30 s leeway
        assert _reject(token, config, static_manager, NOW + 30) == "expired"

    def test_nbf_beyond_leeway(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        assert verify_token(mint(rsa_key, nbf=NOW + 30), config, static_manager, NOW)
        assert _reject(mint(rsa_key, nbf=NOW + 31), config, static_manager) == "not_yet_valid"

    def test_iat_in_the_future_beyond_leeway(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        token = mint(rsa_key, iat=NOW + 60, nbf=None, exp=NOW + 900)
        assert _reject(token, config, static_manager) == "not_yet_valid"

    def test_lifetime_over_max(
        self, key_file: Path, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        config = make_config(key_file, jwks=jwks_of(rsa_key), max_lifetime_seconds=900)
        assert verify_token(mint(rsa_key), config, static_manager, NOW)
        token = mint(rsa_key, exp=NOW + 901)
        assert _reject(token, config, static_manager) == "lifetime"

    @pytest.mark.parametrize(
        "claims",
        [
            pytest.param({"exp": math.nan}, id="exp-nan"),
            pytest.param({"iat": math.nan}, id="iat-nan"),
            pytest.param({"nbf": math.nan}, id="nbf-nan"),
            pytest.param({"exp": math.inf}, id="exp-infinity"),
            pytest.param({"exp": 10**400}, id="exp-beyond-float"),
        ],
    )
    def test_times_that_are_not_finite_numbers(
        self,
        config: JwtConfig,
        rsa_key: RsaKey,
        static_manager: JwksManager,
        claims: dict[str, Any],
    ) -> None:
        """NaN compares false with everything: as ``exp`` or ``iat`` it would pass the
        expiry and lifetime checks (tests/security/test_tokens.py found it)."""
        token = mint(rsa_key, **claims)
        assert _reject(token, config, static_manager) == "malformed_claims"

    @pytest.mark.parametrize("token_use", ["refresh", "id", None])
    def test_refresh_token_used_as_access_token(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager, token_use: str | None
    ) -> None:
        token = mint(rsa_key, token_use=token_use)
        assert _reject(token, config, static_manager) == "token_use"

    def test_opaque_refresh_token_is_malformed(
        self, config: JwtConfig, static_manager: JwksManager
    ) -> None:
        assert _reject("rt_" + "A" * 43, config, static_manager) == "malformed"

    def test_required_claims(
        self, key_file: Path, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        config = make_config(key_file, jwks=jwks_of(rsa_key), required_claims=["sid", "amr"])
        assert verify_token(mint(rsa_key), config, static_manager, NOW)
        assert _reject(mint(rsa_key, amr=None), config, static_manager) == "missing_claim"

    @pytest.mark.parametrize("claim", ["jti", "sub", "exp", "iat", "iss", "aud"])
    def test_base_claims_are_required(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager, claim: str
    ) -> None:
        assert _reject(mint(rsa_key, **{claim: None}), config, static_manager) == "missing_claim"

    def test_tampered_payload(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        header, _, signature = mint(rsa_key).split(".")
        forged = _segment(access_claims(roles=["user", "staff"]))
        assert _reject(f"{header}.{forged}.{signature}", config, static_manager) == "bad_signature"

    def test_signed_by_another_key_with_our_kid(
        self, config: JwtConfig, rsa_key: RsaKey, other_rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        token = mint(other_rsa_key, kid=rsa_key.kid)
        assert _reject(token, config, static_manager) == "bad_signature"

    def test_oversized(
        self, config: JwtConfig, rsa_key: RsaKey, static_manager: JwksManager
    ) -> None:
        token = mint(rsa_key, padding="x" * 9000)
        assert _reject(token, config, static_manager) == "oversized"

    @pytest.mark.parametrize(
        "overrides",
        [
            {"roles": "staff"},
            {"roles": ["user", 3]},
            {"roles": ["a,b"]},
            {"scope": ["profile"]},
            {"sub": "u1\r\nX-User-Id: admin"},
            {"email": 5},
            {"exp": "never"},
            {"iat": True},
            {"sub": 42},
        ],
    )
    def test_malformed_identity_claims(
        self,
        config: JwtConfig,
        rsa_key: RsaKey,
        static_manager: JwksManager,
        overrides: dict[str, Any],
    ) -> None:
        assert _reject(mint(rsa_key, **overrides), config, static_manager) in {
            "malformed_claims",
            "malformed",
        }

    def test_hs256_with_inline_oct_key(self, key_file: Path) -> None:
        secret = b"0123456789abcdef0123456789abcdef"
        jwks = {"keys": [{"kty": "oct", "kid": "s1", "k": _b64(secret)}]}
        config = make_config(key_file, jwks=jwks, algorithms=["HS256"])
        keys = JwksManager(static=static_keys(config.jwks))
        token = jwt.encode(access_claims(), secret, algorithm="HS256", headers={"kid": "s1"})
        assert verify_token(token, config, keys, NOW)
        bad = jwt.encode(access_claims(), b"x" * 32, algorithm="HS256", headers={"kid": "s1"})
        assert _reject(bad, config, keys) == "bad_signature"
