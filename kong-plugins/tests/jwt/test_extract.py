"""Finding the token in a request: headers, cookies, query parameters, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import BearerError, TokenRejected
from edge_plugins.jwt.extract import extract_token
from tests.support.edge_jwt import (
    RsaKey,
    jwks_of,
    make_config,
)


@pytest.fixture
def config(key_file: Path, rsa_key: RsaKey) -> JwtConfig:
    return make_config(key_file, jwks=jwks_of(rsa_key))


class TestExtraction:
    def test_no_token(self, config: JwtConfig) -> None:
        assert extract_token(config, {"accept": ["*/*"]}, "") is None

    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
    def test_bearer_scheme_is_case_insensitive(self, config: JwtConfig, scheme: str) -> None:
        assert (
            extract_token(config, {"authorization": [f"{scheme} abc.def.ghi"]}, "") == "abc.def.ghi"
        )

    def test_single_string_header_values_are_accepted(self, config: JwtConfig) -> None:
        assert extract_token(config, {"authorization": "Bearer a.b.c"}, "") == "a.b.c"

    def test_other_schemes_are_not_bearer_tokens(self, config: JwtConfig) -> None:
        assert extract_token(config, {"authorization": ["Basic dXNlcjpwYXNz"]}, "") is None

    @pytest.mark.parametrize(
        "value",
        ["Bearer", "Bearer ", "Bearer a.b.c extra", "Bearer a.b.c\u00e9", "Bearer <script>"],
    )
    def test_malformed_bearer_values(self, config: JwtConfig, value: str) -> None:
        with pytest.raises(TokenRejected) as info:
            extract_token(config, {"authorization": [value]}, "")
        assert info.value.reason == "malformed"
        assert info.value.error is BearerError.INVALID_TOKEN

    def test_two_different_tokens_in_repeated_headers(self, config: JwtConfig) -> None:
        with pytest.raises(TokenRejected) as info:
            extract_token(config, {"authorization": ["Bearer a.b.c", "Bearer d.e.f"]}, "")
        assert info.value.reason == "multiple_tokens"
        assert info.value.error is BearerError.INVALID_REQUEST

    def test_the_same_token_twice_is_one_token(self, config: JwtConfig) -> None:
        assert (
            extract_token(config, {"authorization": ["Bearer a.b.c", "bearer a.b.c"]}, "")
            == "a.b.c"
        )

    def test_two_different_tokens_across_sources(self, key_file: Path, rsa_key: RsaKey) -> None:
        config = make_config(
            key_file,
            jwks=jwks_of(rsa_key),
            cookie_names=["access_token"],
            query_param_names=["access_token"],
        )
        headers = {"authorization": ["Bearer a.b.c"], "cookie": ["access_token=a.b.c"]}
        assert extract_token(config, headers, "access_token=a.b.c") == "a.b.c"
        with pytest.raises(TokenRejected, match="multiple_tokens"):
            extract_token(config, headers, "access_token=x.y.z")
        with pytest.raises(TokenRejected, match="multiple_tokens"):
            extract_token(config, {"cookie": ["access_token=a.b.c; access_token=x.y.z"]}, "")

    def test_cookies_and_query_params(self, key_file: Path, rsa_key: RsaKey) -> None:
        config = make_config(
            key_file, jwks=jwks_of(rsa_key), cookie_names=["at"], query_param_names=["token"]
        )
        assert extract_token(config, {"cookie": ['theme=dark; at="a.b.c"; x=1']}, "") == "a.b.c"
        assert extract_token(config, {}, "page=2&token=a.b.c") == "a.b.c"
        assert extract_token(config, {"cookie": ["other=a.b.c"]}, "tok=a.b.c") is None

    def test_unconfigured_sources_are_ignored(self, config: JwtConfig) -> None:
        assert (
            extract_token(config, {"cookie": ["access_token=a.b.c"]}, "access_token=a.b.c") is None
        )

    def test_dedicated_headers_may_carry_a_bare_token(
        self, key_file: Path, rsa_key: RsaKey
    ) -> None:
        config = make_config(
            key_file, jwks=jwks_of(rsa_key), header_names=["authorization", "x-access-token"]
        )
        assert extract_token(config, {"x-access-token": ["a.b.c"]}, "") == "a.b.c"
        assert extract_token(config, {"x-access-token": ["Bearer a.b.c"]}, "") == "a.b.c"

    def test_oversized_header_is_rejected_before_parsing(self, config: JwtConfig) -> None:
        with pytest.raises(TokenRejected, match="oversized"):
            extract_token(config, {"authorization": ["Bearer " + "a" * 100_000]}, "")
