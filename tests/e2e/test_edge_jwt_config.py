"""edge-jwt as Kong loads it: its schema, the repository's kong.conf/kong.yml, and the plugin
entry module driven with a recording stand-in for the PDK (no RPC, no backend).

The end-to-end behaviour through the harness and the real backend is in
test_edge_jwt_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge_plugins import edge_jwt
from edge_plugins.guard import RequestEnded, error_request
from kong_harness.gateway import Gateway
from kong_harness.schema import ConfigError, process_config, select_config
from tests.support.harness import BIN_DIR, load_repo_gateway
from tests.support.recording_kong import RecordingKong

REPO = Path(__file__).resolve().parents[2]

# Every endpoint of backend/src/auth_backend/*/urls.py under /api/auth/ (docs/accounts.md).
PUBLIC = [
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/verify-email"),
    ("POST", "/api/auth/resend-verification"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/login/2fa"),
    ("POST", "/api/auth/token/refresh"),
    ("POST", "/api/auth/google/login"),
    ("POST", "/api/auth/password/reset"),
    ("POST", "/api/auth/password/reset/confirm"),
    ("GET", "/api/auth/.well-known/jwks.json"),
    ("GET", "/api/auth/health/live/"),
    ("GET", "/api/auth/health/ready"),
    ("GET", "/api/auth/schema/"),
    ("GET", "/api/auth/schema/swagger/"),
    ("GET", "/api/auth/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"),
]
PROTECTED = [
    ("GET", "/api/auth/profile"),
    ("PATCH", "/api/auth/profile/"),
    ("POST", "/api/auth/2fa/setup"),
    ("POST", "/api/auth/2fa/enable"),
    ("POST", "/api/auth/2fa/disable"),
    ("POST", "/api/auth/2fa/recovery-codes"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/seller/apply"),
    ("GET", "/api/auth/seller/status"),
]
STAFF = [("POST", "/api/auth/seller/applications/6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33/decision")]
UNROUTED = [
    "/internal/auth/users/x",
    "/internal/auth/validate-token",
    "/admin/",
    "/metrics",
    "/api/auth/metrics",
    "/api/auth/seller/applications/x",
    "/api/auth/nowhere",
]


@pytest.fixture(scope="module")
def dumped_schema() -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN_DIR / "edge-jwt"), "--dump"], capture_output=True, check=True, timeout=60
    ).stdout
    return json.loads(out)[0]["Schema"]


@pytest.fixture(scope="module")
def repo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("EDGE_JWT_SIGNING_KEY_FILE", raising=False)  # as in the Kong image
        yield load_repo_gateway(tmp_path_factory.mktemp("prefix"))


def _effective_edge_jwt(gateway: Gateway, method: str, path: str) -> dict[str, Any] | None:
    assert gateway.router is not None and gateway.config is not None
    match = gateway.router.match(method, "localhost", path, {}, server_port=8000)
    if match is None:
        return None
    plugins = [
        p for p in gateway.config.plugins_for(match.route, match.service) if p.name == "edge-jwt"
    ]
    assert len(plugins) == 1, f"{path}: edge-jwt must run on every route"
    return dict(gateway.configured[plugins[0].id].conf)


def test_repository_kong_conf_serves_edge_jwt(repo_gateway: Gateway) -> None:
    info = repo_gateway.external["edge-jwt"]
    assert (info.priority, info.phases) == (1450, ("access",))
    assert sorted(repo_gateway.external) == ["edge-jwt", "edge-rate-limit", "edge-trace"]


@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_public_endpoints_are_routed_with_an_optional_token(
    repo_gateway: Gateway, method: str, path: str
) -> None:
    conf = _effective_edge_jwt(repo_gateway, method, path)
    assert conf is not None, f"{path} is not routed"
    assert conf["optional"] is True


@pytest.mark.parametrize(("method", "path"), PROTECTED + STAFF)
def test_protected_endpoints_require_a_token(repo_gateway: Gateway, method: str, path: str) -> None:
    conf = _effective_edge_jwt(repo_gateway, method, path)
    assert conf is not None, f"{path} is not routed"
    assert conf["optional"] is False
    assert conf["required_roles"] == (["staff"] if (method, path) in STAFF else [])


@pytest.mark.parametrize("path", UNROUTED)
def test_internal_admin_and_metrics_are_not_routed(repo_gateway: Gateway, path: str) -> None:
    assert _effective_edge_jwt(repo_gateway, "GET", path) is None


def test_every_repository_config_passes_the_cores_checks(repo_gateway: Gateway) -> None:
    """What the schema cannot express (a key source, HS* only with oct keys) is checked by
    JwtConfig.from_kong at StartInstance; the shipped configs must pass it."""
    from edge_plugins.jwt.config import JwtConfig

    configs = [c.conf for c in repo_gateway.configured.values() if c.plugin.name == "edge-jwt"]
    assert len(configs) >= 3
    for conf in configs:
        config = JwtConfig.from_kong(conf)
        assert config.issuer == "https://auth.local"
        assert config.audiences == ("marketplace-api",)
        assert config.assertion_audience == "auth-backend"
        assert config.jwks_uri == "http://127.0.0.1:8080/api/auth/.well-known/jwks.json"
        assert config.assertion_signing_key_file == "/usr/local/kong/keys/gateway-ed25519.pem"


def test_schema_defaults_are_the_safe_ones(dumped_schema: dict[str, Any]) -> None:
    conf = select_config(
        dumped_schema,
        process_config(
            dumped_schema,
            {
                "issuer": "https://idp",
                "audiences": ["api"],
                "assertion_audience": "svc",
                "jwks_uri": "https://idp/jwks.json",
            },
        ),
    )
    assert conf["algorithms"] == ["RS256"]
    assert conf["header_names"] == ["authorization"]
    assert conf["leeway_seconds"] == 30
    assert conf["optional"] is False
    assert conf["failure_policy"] == "closed"
    assert conf["assertion_issuer"] == "kong-edge"
    assert conf["assertion_ttl_seconds"] == 30
    assert conf["max_token_bytes"] == 8192
    assert conf["realm"] == "api"
    assert "max_lifetime_seconds" not in conf and "revocation_redis_url" not in conf


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": None}, "config.issuer: required field missing"),
        ({"audiences": []}, "config.audiences: length must be at least 1"),
        ({"assertion_audience": None}, "config.assertion_audience: required field missing"),
        ({"algorithms": ["none"]}, "config.algorithms.1: expected one of"),
        ({"failure_policy": "maybe"}, "config.failure_policy: expected one of: closed, open"),
        ({"scopes_match": "some"}, "config.scopes_match: expected one of: any, all"),
        ({"roles_match": "most"}, "config.roles_match: expected one of: any, all"),
        ({"assertion_ttl_seconds": 61}, "config.assertion_ttl_seconds: value should be between"),
        ({"assertion_ttl_seconds": 0}, "config.assertion_ttl_seconds: value should be between"),
        ({"header_names": "authorization"}, "config.header_names: expected an array"),
        ({"jwks_uri": "file:///etc/passwd"}, "config.jwks_uri: invalid value"),
        ({"realm": 'a"b'}, "config.realm: invalid value"),
    ],
)
def test_schema_rejects_unsafe_configs(
    dumped_schema: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    base = {
        "issuer": "https://idp",
        "audiences": ["api"],
        "assertion_audience": "svc",
        "jwks_uri": "https://idp/jwks.json",
    }
    config = {k: v for k, v in {**base, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        process_config(dumped_schema, config)


# --- the entry module with a recording PDK ----------------------------------------------------


def jwt_kong(
    headers: dict[str, list[str]],
    method: str = "GET",
    raw_query: str = "",
    upstream_uri: str = "/api/auth/profile",
) -> RecordingKong:
    """A recording PDK answering what edge-jwt reads: headers, method, raw query, and the
    nginx variable upstream_uri (any other variable is nil)."""
    return RecordingKong(
        {
            "kong.request.get_headers": headers,
            "kong.request.get_method": method,
            "kong.request.get_raw_query": raw_query,
            "kong.nginx.get_var": lambda name: {"upstream_uri": upstream_uri}.get(name),
        }
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from edge_plugins.jwt.assertion import generate_signing_key

    workdir = tmp_path_factory.mktemp("edge-jwt-unit")
    signing_key = workdir / "gateway.pem"
    generate_signing_key(signing_key, workdir / "gateway-jwks.json")
    issuer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        issuer.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {
        "issuer": issuer,
        "public_pem": public_pem,
        "signing_key": str(signing_key),
        "gateway_jwks": workdir / "gateway-jwks.json",
    }


def _config(keys: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "issuer": "https://idp",
        "audiences": ["api"],
        "assertion_audience": "svc",
        "public_keys_pem": [keys["public_pem"]],
        "assertion_signing_key_file": keys["signing_key"],
        **extra,
    }


def _token(keys: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": "https://idp",
        "aud": "api",
        "sub": str(uuid.uuid4()),
        "email": "a@b.c",
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "token_use": "access",
        **claims,
    }
    return jwt.encode(body, keys["issuer"], algorithm="RS256")


def test_error_request_is_terminal() -> None:
    kong = jwt_kong({})
    with pytest.raises(RequestEnded):
        error_request(kong, 401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="api"'})
    assert kong.calls == [
        ("kong.response.error", (401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="api"'}))
    ]


def test_accepted_request_makes_five_pdk_calls(keys: dict[str, Any]) -> None:
    """The assertion is bound to the request's method and to the path the upstream gets
    (Kong's $upstream_uri): two round trips, for accepted requests only."""
    plugin = edge_jwt.Plugin(_config(keys))
    token = _token(keys)
    kong = jwt_kong(
        {"authorization": [f"Bearer {token}"], "host": ["x"]},
        method="PATCH",
        upstream_uri="/api/auth/profile/",
    )
    plugin.access(kong)
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.request.get_method",
        "kong.nginx.get_var",
        "kong.service.request.set_headers",
        "kong.ctx.shared.set",
    ]
    assert kong.calls[0][1] == (1000,)
    assert kong.args("kong.nginx.get_var") == ("upstream_uri",)
    upstream = kong.args("kong.service.request.set_headers")[0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert upstream["X-User-Id"] == claims["sub"]
    assert kong.calls[4][1] == ("edge.subject", claims["sub"])
    jwks = jwt.PyJWKSet.from_dict(json.loads(keys["gateway_jwks"].read_text()))
    assertion = upstream["X-Identity-Assertion"]
    key = jwks[jwt.get_unverified_header(assertion)["kid"]]
    asserted = jwt.decode(assertion, key.key, algorithms=["EdDSA"], audience="svc")
    assert asserted["sub"] == claims["sub"] and asserted["jti"] == claims["jti"]
    assert (asserted["req_method"], asserted["req_path"]) == ("PATCH", "/api/auth/profile/")
    assert asserted["assertion_id"]


def test_no_upstream_path_fails_closed_without_an_assertion(keys: dict[str, Any]) -> None:
    """A nil $upstream_uri must not be signed as a path: Kong's 500, identity cleared."""
    kong = jwt_kong(
        {"authorization": [f"Bearer {_token(keys)}"], "x-user-id": ["evil"]}, upstream_uri=None
    )  # type: ignore[arg-type]
    edge_jwt.Plugin(_config(keys)).access(kong)
    assert kong.methods[-2:] == ["kong.service.request.set_headers", "kong.response.error"]
    assert kong.args("kong.service.request.set_headers") == ({"x-user-id": []},)
    assert kong.calls[-1][1][0] == 500


def test_spoofed_headers_are_cleared_then_rejection_is_kongs_error(keys: dict[str, Any]) -> None:
    plugin = edge_jwt.Plugin(_config(keys))
    kong = jwt_kong({"x-user_id": ["evil"], "x-identity-assertion": ["forged"]})
    plugin.access(kong)
    assert kong.methods == ["kong.request.get_headers", "kong.response.error"]
    status, message, headers = kong.calls[-1][1]
    assert (status, message) == (401, "Unauthorized")
    assert headers == {"WWW-Authenticate": 'Bearer realm="api"'}

    optional = edge_jwt.Plugin(_config(keys, optional=True))
    kong = jwt_kong({"x-user_id": ["evil"], "x-identity-assertion": ["forged"]})
    optional.access(kong)
    # the path it would forward (checked for encoded separators, jwt.route_guard), then one
    # round trip however many identity headers a client sends
    assert kong.calls[1:] == [
        ("kong.nginx.get_var", ("upstream_uri",)),
        ("kong.service.request.set_headers", ({"x-user_id": [], "x-identity-assertion": []},)),
    ]


def test_cgi_shaped_headers_are_cleared_with_the_identity_headers(keys: dict[str, Any]) -> None:
    """jwt.route_guard: ``SCRIPT_NAME`` and kin go in the same one ``set_headers`` call."""
    headers = {"script_name": ["/x"], "path-info": ["/y"], "x-user-id": ["evil"], "a": ["1"]}
    kong = jwt_kong(headers)
    edge_jwt.Plugin(_config(keys, optional=True)).access(kong)
    assert kong.calls[1:] == [
        ("kong.nginx.get_var", ("upstream_uri",)),
        (
            "kong.service.request.set_headers",
            ({"x-user-id": [], "script_name": [], "path-info": []},),
        ),
    ]


@pytest.mark.parametrize("optional", [True, False], ids=["anonymous", "with-token"])
@pytest.mark.parametrize("uri", ["/api/auth/login%2F2fa", "/api/auth/a%5cb"])
def test_an_encoded_separator_in_the_path_is_refused(
    keys: dict[str, Any], optional: bool, uri: str
) -> None:
    headers = {} if optional else {"authorization": [f"Bearer {_token(keys)}"]}
    kong = jwt_kong(headers, upstream_uri=uri)
    edge_jwt.Plugin(_config(keys, optional=optional)).access(kong)
    assert kong.methods[-1] == "kong.response.error"
    assert kong.calls[-1][1][0] == 400
    assert "kong.service.request.set_headers" not in kong.methods  # no identity goes on


def test_method_is_asked_only_for_a_possible_preflight(keys: dict[str, Any]) -> None:
    preflight = {"origin": ["https://app"], "access-control-request-method": ["POST"]}
    kong = jwt_kong(preflight, method="OPTIONS")
    edge_jwt.Plugin(_config(keys, run_on_preflight=False)).access(kong)
    # let through: the path it goes to is checked too (jwt.route_guard)
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.request.get_method",
        "kong.nginx.get_var",
    ]
    kong = jwt_kong(preflight, method="OPTIONS")
    edge_jwt.Plugin(_config(keys)).access(kong)  # run_on_preflight (default): no token → 401
    assert kong.methods == ["kong.request.get_headers", "kong.response.error"]


def test_query_is_read_only_when_configured(keys: dict[str, Any]) -> None:
    token = _token(keys)
    kong = jwt_kong({}, raw_query=f"access_token={token}")
    edge_jwt.Plugin(_config(keys, query_param_names=["access_token"])).access(kong)
    assert kong.methods == [
        "kong.request.get_headers",
        "kong.request.get_raw_query",
        "kong.request.get_method",
        "kong.nginx.get_var",
        "kong.service.request.set_headers",
        "kong.ctx.shared.set",
    ]


def test_a_config_the_core_refuses_fails_closed(keys: dict[str, Any]) -> None:
    """Schema-valid but unusable (no key source): StartInstance must not raise (kong-pdk
    would fail every request of the instance), and requests answer Kong's 500 — after the
    spoofed identity headers are cleared — even under failure_policy: open."""
    config = {
        "issuer": "https://idp",
        "audiences": ["api"],
        "assertion_audience": "svc",
        "failure_policy": "open",
    }
    plugin = edge_jwt.Plugin(config)
    assert plugin.config_error and "key source" in plugin.config_error
    kong = jwt_kong({"x-user-id": ["evil"]})
    plugin.access(kong)
    assert kong.calls == [
        ("kong.request.get_headers", (1000,)),
        ("kong.service.request.set_headers", ({"x-user-id": []},)),
        ("kong.response.error", (500,)),
    ]


def test_signing_key_file_comes_through_kongs_env_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin server never sees EDGE_JWT_SIGNING_KEY_FILE (Kong spawns it with ``TZ``
    only, kong/runloop/plugin_servers/process.lua); kong.yml names the key with an env-vault
    reference that Kong's master resolves (kong/init.lua warms the declarative config's
    references in the init phase). Unresolved, the field is ``""`` (kong/db/schema/init.lua)
    and the plugin uses the Kong image's path."""
    from edge_plugins.jwt.config import DEFAULT_SIGNING_KEY_FILE, JwtConfig

    def key_files(prefix: str) -> set[str]:
        gateway = load_repo_gateway(tmp_path / prefix)
        confs = [c.conf for c in gateway.configured.values() if c.plugin.name == "edge-jwt"]
        assert all(
            c["$refs"]["assertion_signing_key_file"] == "{vault://env/edge-jwt-signing-key-file}"
            for c in confs
        )
        return {JwtConfig.from_kong(c).assertion_signing_key_file for c in confs}

    monkeypatch.setenv("EDGE_JWT_SIGNING_KEY_FILE", "/run/secrets/gateway.pem")
    assert key_files("set") == {"/run/secrets/gateway.pem"}
    monkeypatch.delenv("EDGE_JWT_SIGNING_KEY_FILE")
    assert key_files("unset") == {DEFAULT_SIGNING_KEY_FILE}


def test_a_full_header_map_is_refused_with_431(keys: dict[str, Any]) -> None:
    """get_headers(1000) returns at most 1000 lines (kong/pdk/request.lua MAX_HEADERS): a map
    that full may hide more, so edge-jwt answers Kong's 431 error, whatever the token
    (jwt.decision); a rejected request never reaches the upstream."""
    plugin = edge_jwt.Plugin(_config(keys, optional=True))
    headers = {f"x-f{i}": ["x"] for i in range(997)}
    headers.update(
        {
            "authorization": [f"Bearer {_token(keys)}"],
            "x-user-id": ["evil"],
            "x_user_roles": ["staff"],
        }
    )
    kong = jwt_kong(headers)
    plugin.access(kong)
    assert kong.calls == [
        ("kong.request.get_headers", (1000,)),
        ("kong.response.error", (431, "Request header fields too large")),
    ]
