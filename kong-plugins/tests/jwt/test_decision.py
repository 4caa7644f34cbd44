"""decide(): every verdict the plugin can get, with the exact headers it must apply."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from edge_plugins.jwt import verify
from edge_plugins.jwt.assertion import AssertionSigner, RequestBinding
from edge_plugins.jwt.cache import VerifiedTokenCache
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.decision import Verdict, decide, header_lines, too_many_header_lines
from edge_plugins.jwt.fetch import FetchedJwks, JwksFetchError
from edge_plugins.jwt.key_manager import JwksManager
from edge_plugins.jwt.revocation import NullRevocations, RevocationState, RevocationView
from tests.support.edge_jwt import (
    NOW,
    SUB,
    FakeClock,
    RsaKey,
    access_claims,
    jwks_of,
    make_config,
    mint,
    plain_headers_agree,
    verify_assertion,
)

CHALLENGE_MISSING = 'Bearer realm="api"'
CHALLENGE_INVALID = (
    'Bearer realm="api", error="invalid_token", error_description="The access token is invalid"'
)
CHALLENGE_REQUEST = (
    'Bearer realm="api", error="invalid_request", error_description="The '
    'request carries the access token more than once or in an unsupported way"'
)
CHALLENGE_SCOPE = (
    'Bearer realm="api", error="insufficient_scope", '
    'error_description="The access token does not grant access to this resource"'
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Env:
    """decide() with test defaults: inline keys, no revocations, the test gateway key."""

    def __init__(
        self, key_file: Path, rsa_key: RsaKey, signer: AssertionSigner, keys: JwksManager
    ) -> None:
        self.key_file = key_file
        self.rsa_key = rsa_key
        self.signer = signer
        self.keys = keys
        self.cache = VerifiedTokenCache()
        self.revocations: RevocationView = NullRevocations()
        self.targets_asked = 0  # calls of request_target: PDK round trips in the plugin

    def config(self, **overrides: Any) -> JwtConfig:
        return make_config(self.key_file, jwks=jwks_of(self.rsa_key), **overrides)

    def __call__(
        self,
        token: str | None = None,
        *,
        config: JwtConfig | None = None,
        headers: dict[str, Any] | None = None,
        method: str = "GET",
        query: str = "",
        now: float = NOW,
        keys: Any = None,
        path: str = "/api/auth/profile",
    ) -> Verdict:
        request_headers = {"host": ["api.test"], **(headers or {})}
        if token is not None:
            request_headers["authorization"] = [f"Bearer {token}"]

        def request_target() -> RequestBinding:
            self.targets_asked += 1
            return RequestBinding(method, path)

        return decide(
            config or self.config(),
            method=method,
            headers=request_headers,
            query=query,
            keys=keys or self.keys,
            revocations=self.revocations,
            signer=self.signer,
            cache=self.cache,
            now=now,
            request_target=request_target,
        )


@pytest.fixture
def env(
    key_file: Path, rsa_key: RsaKey, signer: AssertionSigner, static_manager: JwksManager
) -> Env:
    return Env(key_file, rsa_key, signer, static_manager)


def _validations(result: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "edge_jwt_validations_total", {"result": result, "reason": reason}
        )
        or 0.0
    )


# --- success ------------------------------------------------------------------------------


def test_happy_path_sets_identity_and_an_assertion_the_backend_accepts(
    env: Env, rsa_key: RsaKey, gateway_key: tuple[Path, Path]
) -> None:
    now = time.time()
    claims = access_claims(
        iat=int(now),
        nbf=int(now),
        exp=int(now) + 900,
        roles=["user", "seller"],
        scope="profile seller",
    )
    token = mint(rsa_key, **claims)
    before = _validations("accepted", "ok")
    verdict = env(token, now=now, method="PATCH", path="/api/auth/profile/")
    assert verdict.status == 200 and verdict.allowed
    assert verdict.reason == "ok" and verdict.message is None
    assert verdict.subject == SUB
    assert verdict.clear_headers == () and verdict.response_headers == {}
    headers = verdict.upstream_headers
    assert set(headers) == {
        "X-User-Id",
        "X-User-Email",
        "X-User-Roles",
        "X-User-Scopes",
        "X-Identity-Assertion",
    }
    assert headers["X-User-Id"] == SUB
    assert headers["X-User-Email"] == "ada@example.test"
    assert headers["X-User-Roles"] == "user,seller"
    assert headers["X-User-Scopes"] == "profile seller"
    asserted = verify_assertion(
        headers["X-Identity-Assertion"],
        json.loads(gateway_key[1].read_text()),
        request=("PATCH", "/api/auth/profile/"),
    )
    assert asserted is not None and asserted["jti"] == claims["jti"]
    assert env.targets_asked == 1
    assert plain_headers_agree(headers, asserted)
    assert _validations("accepted", "ok") == before + 1


# --- rejections (401) ---------------------------------------------------------------------


def _hs256_with_public_key(key: RsaKey) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(access_claims()).encode())}"
    mac = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered(key: RsaKey) -> str:
    header, _, signature = mint(key).split(".")
    return f"{header}.{_b64(json.dumps(access_claims(roles=['staff'])).encode())}.{signature}"


REJECTIONS = {
    "malformed": lambda k: "not-a-jwt",
    "alg_none": lambda k: (
        _b64(json.dumps({"alg": "none", "kid": k.kid}).encode())
        + "."
        + _b64(json.dumps(access_claims()).encode())
        + "."
    ),
    "hs256_with_rsa_public_key": _hs256_with_public_key,
    "unknown_kid": lambda k: mint(k, kid="unknown"),
    "wrong_iss": lambda k: mint(k, iss="https://evil.test"),
    "wrong_aud": lambda k: mint(k, aud="somebody-else"),
    "expired": lambda k: mint(k, iat=NOW - 1000, nbf=NOW - 1000, exp=NOW - 31),
    "nbf_beyond_leeway": lambda k: mint(k, nbf=NOW + 31),
    "refresh_token_as_access": lambda k: mint(k, token_use="refresh"),
    "tampered_payload": _tampered,
    "oversized": lambda k: mint(k, padding="x" * 9000),
}
REASONS = {
    "malformed": "malformed",
    "alg_none": "alg_not_allowed",
    "hs256_with_rsa_public_key": "alg_not_allowed",
    "unknown_kid": "unknown_kid",
    "wrong_iss": "issuer",
    "wrong_aud": "audience",
    "expired": "expired",
    "nbf_beyond_leeway": "not_yet_valid",
    "refresh_token_as_access": "token_use",
    "tampered_payload": "bad_signature",
    "oversized": "oversized",
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_invalid_tokens_get_401_invalid_token(env: Env, rsa_key: RsaKey, case: str) -> None:
    verdict = env(REJECTIONS[case](rsa_key))
    assert verdict.status == 401
    assert verdict.reason == REASONS[case]
    assert verdict.response_headers == {"WWW-Authenticate": CHALLENGE_INVALID}
    assert verdict.message == "Invalid access token"
    assert verdict.upstream_headers == {} and verdict.subject is None


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_invalid_tokens_are_rejected_on_optional_routes_too(
    env: Env, rsa_key: RsaKey, case: str
) -> None:
    verdict = env(REJECTIONS[case](rsa_key), config=env.config(optional=True))
    assert verdict.status == 401 and verdict.reason == REASONS[case]


def test_lifetime_over_max(env: Env, rsa_key: RsaKey) -> None:
    verdict = env(mint(rsa_key), config=env.config(max_lifetime_seconds=600))
    assert (verdict.status, verdict.reason) == (401, "lifetime")


def test_missing_token_gets_a_bare_challenge(env: Env) -> None:
    verdict = env()
    assert verdict.status == 401 and verdict.reason == "missing"
    assert verdict.response_headers == {"WWW-Authenticate": CHALLENGE_MISSING}
    assert verdict.message == "Unauthorized"


def test_non_bearer_credentials_count_as_missing(env: Env) -> None:
    verdict = env(headers={"authorization": ["Basic dXNlcjpwYXNz"]})
    assert (verdict.status, verdict.reason) == (401, "missing")


def test_two_different_tokens(env: Env, rsa_key: RsaKey) -> None:
    verdict = env(headers={"authorization": [f"Bearer {mint(rsa_key)}", f"Bearer {mint(rsa_key)}"]})
    assert (verdict.status, verdict.reason) == (401, "multiple_tokens")
    assert verdict.response_headers == {"WWW-Authenticate": CHALLENGE_REQUEST}


def test_two_different_tokens_across_sources(env: Env, rsa_key: RsaKey) -> None:
    config = env.config(query_param_names=["access_token"])
    verdict = env(mint(rsa_key), config=config, query=f"access_token={mint(rsa_key)}")
    assert (verdict.status, verdict.reason) == (401, "multiple_tokens")


def test_revoked_jti(env: Env, rsa_key: RsaKey) -> None:
    state = RevocationState(clock=lambda: NOW)
    env.revocations = state
    token = mint(rsa_key, jti="jti-1")
    assert env(token).status == 200
    state.revoke_jtis(["jti-1"], exp=NOW + 900)
    verdict = env(token)
    assert (verdict.status, verdict.reason) == (401, "revoked")
    assert verdict.response_headers == {"WWW-Authenticate": CHALLENGE_INVALID}


def test_revoked_by_subject_not_before(env: Env, rsa_key: RsaKey) -> None:
    state = RevocationState(clock=lambda: NOW)
    env.revocations = state
    state.set_not_before(SUB, NOW - 10)
    assert env(mint(rsa_key, iat=NOW - 11, nbf=NOW - 11)).reason == "revoked"
    assert env(mint(rsa_key, iat=NOW - 10, nbf=NOW - 10)).status == 200
    assert env(mint(rsa_key, iat=NOW - 11, sub="someone-else")).status == 200


def test_unknown_kid_through_a_jwks_uri_refetches_once(env: Env, rsa_key: RsaKey) -> None:
    calls = []

    def fetch(uri: str) -> FetchedJwks:
        calls.append(uri)
        return FetchedJwks(jwks_of(rsa_key), 300)

    keys = JwksManager(
        jwks_uri="https://idp.test/jwks", fetcher=fetch, clock=FakeClock(), background=False
    )
    config = make_config(env.key_file, jwks_uri="https://idp.test/jwks")
    assert env(mint(rsa_key), config=config, keys=keys).status == 200
    for _ in range(3):
        assert env(mint(rsa_key, kid="bogus"), config=config, keys=keys).reason == "unknown_kid"
    assert len(calls) == 2


# --- 403 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, claims, reason",
    [
        ({"required_scopes": ["seller"]}, {"scope": "profile"}, "insufficient_scope"),
        ({"required_scopes": ["profile", "seller"]}, {"scope": "profile"}, "insufficient_scope"),
        (
            {"required_scopes": ["profile", "seller"], "scopes_match": "any"},
            {"scope": "admin"},
            "insufficient_scope",
        ),
        ({"required_roles": ["staff"]}, {"roles": ["user"]}, "insufficient_role"),
        (
            {"required_roles": ["staff", "seller"], "roles_match": "any"},
            {"roles": ["user"]},
            "insufficient_role",
        ),
    ],
)
def test_insufficient_scope_or_role_is_403(
    env: Env, rsa_key: RsaKey, overrides: dict, claims: dict, reason: str
) -> None:
    verdict = env(mint(rsa_key, **claims), config=env.config(**overrides))
    assert (verdict.status, verdict.reason) == (403, reason)
    assert verdict.response_headers == {"WWW-Authenticate": CHALLENGE_SCOPE}
    assert verdict.message == "Insufficient scope" and verdict.upstream_headers == {}


@pytest.mark.parametrize(
    "overrides, claims",
    [
        ({"required_scopes": ["profile", "seller"], "scopes_match": "any"}, {"scope": "profile"}),
        ({"required_scopes": ["profile", "seller"]}, {"scope": "seller profile"}),
        ({"required_roles": ["staff", "seller"], "roles_match": "any"}, {"roles": ["staff"]}),
        (
            {"required_roles": ["staff"], "required_scopes": ["profile"]},
            {"roles": ["user", "staff"]},
        ),
    ],
)
def test_sufficient_scope_or_role_passes(
    env: Env, rsa_key: RsaKey, overrides: dict, claims: dict
) -> None:
    assert env(mint(rsa_key, **claims), config=env.config(**overrides)).status == 200


# --- optional, preflight, spoofed headers -------------------------------------------------


def test_optional_route_without_token_is_anonymous(env: Env) -> None:
    verdict = env(config=env.config(optional=True))
    assert verdict == Verdict(200, reason="anonymous")


def test_optional_route_with_a_good_token_gets_identity(env: Env, rsa_key: RsaKey) -> None:
    verdict = env(mint(rsa_key), config=env.config(optional=True))
    assert verdict.status == 200 and verdict.subject == SUB
    assert "X-Identity-Assertion" in verdict.upstream_headers


PREFLIGHT = {"origin": ["https://app.test"], "access-control-request-method": ["POST"]}


def test_preflight_passes_without_identity_when_not_run_on_preflight(
    env: Env, rsa_key: RsaKey
) -> None:
    config = env.config(run_on_preflight=False)
    verdict = env(config=config, method="OPTIONS", headers=dict(PREFLIGHT))
    assert verdict == Verdict(200, reason="preflight")
    with_token = env(mint(rsa_key), config=config, method="OPTIONS", headers=dict(PREFLIGHT))
    assert with_token.upstream_headers == {} and with_token.subject is None


def test_preflight_is_checked_by_default(env: Env) -> None:
    verdict = env(method="OPTIONS", headers=dict(PREFLIGHT))
    assert (verdict.status, verdict.reason) == (401, "missing")


def test_plain_options_is_not_a_preflight(env: Env) -> None:
    config = env.config(run_on_preflight=False)
    assert env(config=config, method="OPTIONS", headers={"origin": ["x"]}).status == 401


SPOOFED = {
    "x-user-id": ["admin"],
    "x-user_id": ["admin"],
    "x-user-roles": ["staff"],
    "x-identity-assertion": ["forged"],
    "x-user_email": ["a@b"],
}


@pytest.mark.parametrize(
    "setup", ["success", "missing", "invalid", "anonymous", "preflight", "forbidden"]
)
def test_spoofed_identity_headers_are_cleared_on_every_verdict(
    env: Env, rsa_key: RsaKey, setup: str
) -> None:
    headers: dict[str, Any] = dict(SPOOFED)
    config = env.config()
    token: str | None = mint(rsa_key)
    method = "GET"
    if setup == "missing":
        token = None
    elif setup == "invalid":
        token = "junk"
    elif setup == "anonymous":
        token, config = None, env.config(optional=True)
    elif setup == "preflight":
        token, method, config = None, "OPTIONS", env.config(run_on_preflight=False)
        headers.update(PREFLIGHT)
    elif setup == "forbidden":
        config = env.config(required_roles=["staff"])
    verdict = env(token, config=config, headers=headers, method=method)
    assert sorted(verdict.clear_headers) == sorted(SPOOFED)
    if setup == "success":
        assert verdict.upstream_headers["X-User-Id"] == SUB


# --- more header lines than Kong hands over (431) ------------------------------------------


def _lines(total: int, **extra: list[str]) -> dict[str, Any]:
    """A Kong header map holding ``total`` lines: env() adds host (1), ``extra`` its own."""
    used = 1 + sum(len(v) for v in extra.values())
    return {**{f"x-f{i}": ["x"] for i in range(total - used - 2)}, "x-dup": ["a", "b"], **extra}


def test_header_lines_counts_values_not_names() -> None:
    assert header_lines({"a": ["1", "2", "3"], "b": ["4"]}) == 4
    assert header_lines({"a": "1"}) == 1


def test_too_many_header_lines_is_none_below_the_limit() -> None:
    assert too_many_header_lines({f"h{i}": ["x"] for i in range(999)}) is None
    verdict = too_many_header_lines({"h": ["x"] * 1000}, clear=("x-user-id",))
    assert verdict is not None and verdict.status == 431
    assert verdict.clear_headers == ("x-user-id",)


@pytest.mark.parametrize("optional", [False, True])
def test_a_map_of_1000_lines_fails_closed_even_with_a_good_token(
    env: Env, rsa_key: RsaKey, optional: bool
) -> None:
    """kong.request.get_headers(1000) cannot show line 1001 (kong/pdk/request.lua caps
    max_headers at 1000): what may hide there is unknown, so the request is refused — with
    a good token, on an optional route, with identity headers listed for stripping."""
    before = _validations("rejected", "too_many_headers")
    headers = _lines(1000, **{"x-user-id": ["evil"]})
    verdict = env(mint(rsa_key), config=env.config(optional=optional), headers=headers)
    assert header_lines({"host": ["api.test"], "authorization": ["t"], **headers}) == 1001
    assert verdict.status == 431 and not verdict.allowed
    assert verdict.message == "Request header fields too large"
    assert verdict.upstream_headers == {} and verdict.subject is None
    assert verdict.clear_headers == ("x-user-id",)
    assert "WWW-Authenticate" not in verdict.response_headers
    assert _validations("rejected", "too_many_headers") == before + 1


def test_999_lines_are_decided_as_usual(env: Env, rsa_key: RsaKey) -> None:
    verdict = env(mint(rsa_key), headers=_lines(998))  # + host + authorization = 1000 - 1
    assert verdict.status == 200 and verdict.subject == SUB


# --- infrastructure faults (503) ----------------------------------------------------------


def _down(uri: str) -> FetchedJwks:
    raise JwksFetchError("connection refused")


def test_no_keys_at_all_is_503_with_retry_after(env: Env, rsa_key: RsaKey) -> None:
    keys = JwksManager(
        jwks_uri="https://idp.test/jwks", fetcher=_down, clock=FakeClock(), background=False
    )
    config = make_config(env.key_file, jwks_uri="https://idp.test/jwks")
    verdict = env(mint(rsa_key), config=config, keys=keys, headers={"x-user-id": ["x"]})
    assert (verdict.status, verdict.reason) == (503, "keys_unavailable")
    assert int(verdict.response_headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in verdict.response_headers
    assert verdict.message == "Authentication is temporarily unavailable"
    assert verdict.clear_headers == ("x-user-id",)


def test_no_keys_with_failure_policy_open_passes_anonymous(env: Env, rsa_key: RsaKey) -> None:
    keys = JwksManager(
        jwks_uri="https://idp.test/jwks", fetcher=_down, clock=FakeClock(), background=False
    )
    config = make_config(env.key_file, jwks_uri="https://idp.test/jwks", failure_policy="open")
    before = _validations("failed_open", "keys_unavailable")
    verdict = env(mint(rsa_key), config=config, keys=keys)
    assert verdict == Verdict(200, reason="keys_unavailable")
    assert _validations("failed_open", "keys_unavailable") == before + 1


def test_missing_token_needs_no_keys(env: Env) -> None:
    keys = JwksManager(
        jwks_uri="https://idp.test/jwks", fetcher=_down, clock=FakeClock(), background=False
    )
    config = make_config(env.key_file, jwks_uri="https://idp.test/jwks", optional=True)
    assert env(config=config, keys=keys).reason == "anonymous"


def test_unreadable_signing_key_is_503(env: Env, rsa_key: RsaKey, tmp_path: Path) -> None:
    env.signer = AssertionSigner(str(tmp_path / "missing.pem"))
    verdict = env(mint(rsa_key))
    assert (verdict.status, verdict.reason) == (503, "signer_unavailable")
    assert verdict.response_headers["Retry-After"] == "30"


# --- the verified-token cache -------------------------------------------------------------


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts signature verifications (calls into PyJWT's decode)."""
    calls: list[str] = []
    real = verify._decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(verify, "_decode", counting)
    return calls


def test_a_repeated_token_costs_no_crypto(
    env: Env, rsa_key: RsaKey, verifications: list[str]
) -> None:
    token = mint(rsa_key)
    hits = REGISTRY.get_sample_value("edge_jwt_cache_hits_total", {"cache": "token"}) or 0.0
    first = env(token)
    assertions = {first.upstream_headers["X-Identity-Assertion"]}
    for _ in range(10):
        again = env(token, now=NOW + 1)
        assert again.upstream_headers["X-User-Id"] == first.upstream_headers["X-User-Id"]
        assertions.add(again.upstream_headers["X-Identity-Assertion"])
    assert len(verifications) == 1
    # Bound to its request, an assertion is never reused: one signature per request.
    assert len(assertions) == 11
    assert REGISTRY.get_sample_value("edge_jwt_cache_hits_total", {"cache": "token"}) == hits + 10


def test_only_an_accepted_request_asks_for_its_method_and_path(env: Env, rsa_key: RsaKey) -> None:
    """request_target costs the plugin two PDK round trips: anonymous, rejected and failed
    requests never pay them; an accepted one asks exactly once."""
    assert env().status == 401
    assert env(config=env.config(optional=True)).status == 200
    assert env("not.a.token").status == 401
    assert (
        env(mint(rsa_key, roles=["user"]), config=env.config(required_roles=["staff"])).status
        == 403
    )
    assert env.targets_asked == 0
    assert env(mint(rsa_key)).status == 200
    assert env.targets_asked == 1


def test_cached_tokens_still_meet_revocation_and_route_policy(
    env: Env, rsa_key: RsaKey, verifications: list[str]
) -> None:
    state = RevocationState(clock=lambda: NOW)
    env.revocations = state
    token = mint(rsa_key, jti="jti-c", roles=["user"])
    assert env(token).status == 200
    assert env(token, config=env.config(required_roles=["staff"])).status == 403
    state.revoke_jtis(["jti-c"], exp=NOW + 900)
    assert env(token).reason == "revoked"
    assert len(verifications) == 1


def test_cache_entries_end_at_exp_then_leeway_then_rejection(
    env: Env, rsa_key: RsaKey, verifications: list[str]
) -> None:
    token = mint(rsa_key)  # exp = NOW + 900
    assert env(token).status == 200
    assert env(token, now=NOW + 899).status == 200
    assert len(verifications) == 1
    assert env(token, now=NOW + 910).status == 200  # re-verified, within the leeway
    assert len(verifications) == 2
    assert env(token, now=NOW + 931).reason == "expired"


def test_rejected_tokens_are_not_cached(
    env: Env, rsa_key: RsaKey, verifications: list[str]
) -> None:
    token = mint(rsa_key, iss="https://evil.test")
    env(token)
    env(token)
    assert len(verifications) == 2
    assert len(env.cache) == 0
