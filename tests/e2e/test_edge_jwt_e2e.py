"""edge-jwt end to end: the harness gateway, the edge-jwt plugin server and the real backend.

The gateway loads the repository's own ``kong/kong.yml`` (only addresses, the test's signing
key and the test's Redis channel are swapped in), plus a few test routes to the same
backend and to a recording upstream. The backend is the real one (gunicorn, SQLite in a
temporary directory, the console email backend captured to a log file) and verifies the
gateway's assertion with the public half of a key made for this session.

Tests that need Redis (revocation) skip locally with a one-line reason when it is missing
and fail when ``CI=true``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from tests.support.backend import Backend, User, bearer, login, repo_kong_yml, sign_up
from tests.support.harness import HarnessRunner, Upstream, free_port, header, serve_in_thread
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require

ISSUER = "https://auth.local"
AUDIENCE = "marketplace-api"
PROFILE = "/api/auth/profile"
IDENTITY_HEADERS = (
    "x-user-id",
    "x-user-email",
    "x-user-roles",
    "x-user-scopes",
    "x-identity-assertion",
)


@dataclass(frozen=True)
class IssuerKey:
    """The backend's current access-token signing key, to mint tokens with chosen claims."""

    kid: str
    private_pem: bytes

    def mint(self, claims: dict[str, Any], kid: str | None = None, **header: Any) -> str:
        return jwt.encode(
            claims,
            self.private_pem,
            algorithm="RS256",
            headers={"kid": kid or self.kid, "typ": "JWT", **header},
        )


@pytest.fixture(scope="session")
def issuer_key(backend: Backend) -> IssuerKey:
    httpx.get(backend.jwks_uri, timeout=10).raise_for_status()  # first use creates the key
    out = backend.manage(
        "shell",
        "--verbosity",
        "0",
        "-c",
        (
            "from cryptography.hazmat.primitives import serialization as s\n"
            "from auth_backend.tokens.keys import signing_keys\n"
            "k = signing_keys.current()\n"
            "print('kid=' + k.kid)\n"
            "print(k.private_key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, "
            "s.NoEncryption()).decode())\n"
        ),
    )
    kid = re.search(r"^kid=(\S+)$", out, re.MULTILINE)
    pem = re.search(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", out, re.DOTALL)
    assert kid and pem, out
    return IssuerKey(kid.group(1), pem.group(0).encode())


# --- a JWKS endpoint that can be switched off --------------------------------------------------


class SwitchableJwks:
    """Serves the backend's JWKS while ``up``; answers 503 while down."""

    def __init__(self, source: str) -> None:
        self.up = True
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if not outer.up:
                    self.send_error(503)
                    return
                with urllib.request.urlopen(source, timeout=5) as response:
                    body = response.read()
                    cache_control = response.headers.get("Cache-Control", "")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = serve_in_thread(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


# --- the gateway ------------------------------------------------------------------------------


class Tap:
    """A proxy between the gateway and the backend that keeps the headers it forwards: the
    gateway→backend traffic an attacker who can read it would capture."""

    HOP_BY_HOP = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "host",
        "content-encoding",
    }

    def __init__(self, target: str) -> None:
        self.captured: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in Tap.HOP_BY_HOP}
                outer.captured.append(headers)
                answer = httpx.request(
                    self.command, target + self.path, headers=headers, content=body, timeout=10
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in Tap.HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = serve_in_thread(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def gateway_yml(
    backend: Backend,
    *,
    upstream_port: int | None = None,
    flaky_jwks: str | None = None,
    tap: Tap | None = None,
) -> str:
    """The repository's kong.yml pointed at the test backend, plus the test routes."""
    # Only edge-jwt runs here; the repository's rate limits are exercised in
    # test_edge_rate_limit_e2e.py (login 5/min would otherwise throttle this module).
    doc = repo_kong_yml(backend, plugins=("edge-jwt",))
    (base,) = [p["config"] for p in doc["plugins"] if "route" not in p and "service" not in p]
    assert base.get("optional") is not True, "the global edge-jwt must require a token"

    def via_backend(name: str) -> dict[str, Any]:  # /<name>/profile → /api/auth/profile
        return {
            "name": f"svc-{name}",
            "url": f"{backend.url}/api/auth",
            "routes": [{"name": name, "paths": [f"/{name}"]}],
        }

    if flaky_jwks is not None:
        dead = free_port()
        doc["services"] += [via_backend("flaky"), via_backend("nokeys"), via_backend("rotation")]
        doc["plugins"] += [
            {"name": "edge-jwt", "route": "flaky", "config": {**base, "jwks_uri": flaky_jwks}},
            {
                "name": "edge-jwt",
                "route": "nokeys",
                "config": {**base, "jwks_uri": f"http://127.0.0.1:{dead}/jwks.json"},
            },
            # Its own key manager (the backend answers with and without the trailing slash),
            # so earlier tests' unknown-kid refetches do not rate-limit this one's.
            {
                "name": "edge-jwt",
                "route": "rotation",
                "config": {**base, "jwks_uri": backend.jwks_uri + "/"},
            },
        ]
    if upstream_port is not None:
        doc["services"].append(
            {
                "name": "recorder",
                "url": f"http://127.0.0.1:{upstream_port}",
                "routes": [
                    {"name": "rec", "paths": ["/rec"]},
                    {"name": "rec-open", "paths": ["/rec-open"]},
                ],
            }
        )
        doc["plugins"].append(
            {"name": "edge-jwt", "route": "rec-open", "config": {**base, "optional": True}}
        )
    if tap is not None:  # /tapped/profile → the tap → the backend's /api/auth/profile
        doc["services"].append(
            {
                "name": "tapped",
                "url": f"{tap.url}/api/auth",
                "routes": [{"name": "tapped", "paths": ["/tapped"]}],
            }
        )
    return yaml.safe_dump(doc, sort_keys=False)


def edge_runner(
    backend: Backend, yml: str, *, metrics_port: int = 0, workers: int = 2
) -> HarnessRunner:
    return HarnessRunner(
        yml,
        servers={"edge-jwt": {}},
        commands={"edge-jwt": f"edge-jwt --metrics-port {metrics_port}"},
        workers=workers,
    )


@dataclass
class Edge:
    runner: HarnessRunner
    client: httpx.Client
    metrics_port: int
    jwks: SwitchableJwks

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="session")
def edge(backend: Backend, upstream: Upstream) -> Iterator[Edge]:
    jwks = SwitchableJwks(backend.jwks_uri)
    metrics_port = free_port()
    yml = gateway_yml(backend, upstream_port=upstream.port, flaky_jwks=jwks.url)
    runner = edge_runner(backend, yml, metrics_port=metrics_port).start()
    try:
        with runner.client() as client:
            yield Edge(runner, client, metrics_port, jwks)
    finally:
        runner.stop()
        jwks.server.shutdown()


@pytest.fixture(scope="session")
def user(edge: Edge, backend: Backend) -> User:
    return sign_up(edge.client, backend)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_edge_rejected(response: httpx.Response, status: int, error: str | None) -> None:
    """Kong's own error (not the backend's shape) with the RFC 6750 challenge."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message", "request_id"}, body
    assert body["request_id"] == response.headers["x-kong-request-id"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api"')
    if error is None:
        assert challenge == 'Bearer realm="api"'
    else:
        assert f'error="{error}"' in challenge and "error_description=" in challenge


# --- the happy path -----------------------------------------------------------------------


def test_register_verify_login_then_profile_through_the_gateway(edge: Edge, user: User) -> None:
    response = edge.client.get(PROFILE, headers=bearer(user.access_token))
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["id"] == user.id and profile["email"] == user.email
    assert response.headers["via"] == "1.1 kong/3.9.3"
    # Without the token the same route is refused at the edge, not by the backend.
    assert_edge_rejected(edge.client.get(PROFILE), 401, None)


def test_upstream_gets_identity_headers_and_a_verifiable_assertion(
    edge: Edge, user: User, upstream: Upstream, backend: Backend
) -> None:
    response = edge.client.get("/rec/who", headers=bearer(user.access_token))
    assert response.status_code == 200, response.text
    record = upstream.last
    claims = claims_of(user.access_token)
    assert header(record, "X-User-Id") == [user.id]
    assert header(record, "X-User-Email") == [user.email]
    assert header(record, "X-User-Roles") == [",".join(claims["roles"])]
    assert header(record, "X-User-Scopes") == [claims["scope"]]
    (assertion,) = header(record, "X-Identity-Assertion")
    keys = jwt.PyJWKSet.from_dict(json.loads(backend.gateway_jwks.read_text()))
    head = jwt.get_unverified_header(assertion)
    assert head["alg"] == "EdDSA"
    verified = jwt.decode(
        assertion,
        keys[head["kid"]].key,
        algorithms=["EdDSA"],
        audience="auth-backend",
        issuer="kong-edge",
    )
    assert verified["sub"] == user.id and verified["jti"] == claims["jti"]
    assert 0 < verified["exp"] - verified["iat"] <= 60
    # Bound to this request: its method and the path the upstream got (strip_path: /rec off)
    assert record["path"] == "/who"
    assert (verified["req_method"], verified["req_path"]) == ("GET", "/who")
    assert verified["assertion_id"] and verified["assertion_id"] != verified["jti"]
    # The Authorization header itself still reaches the upstream (Kong does not strip it).
    assert header(record, "Authorization") == [f"Bearer {user.access_token}"]


def test_happy_path_costs_five_pdk_round_trips(
    edge: Edge, backend: Backend, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5 PDK calls per accepted request, cache miss or hit: read headers, set headers, share the
    subject, plus the method and the upstream path the assertion is bound to
    (docs/identity-assertion.md)."""
    from kong_harness import pdk

    calls: list[tuple[str, str, str]] = []
    real_call = pdk.call

    def spy(ctx: pdk.RequestContext, method: str, args: list[Any]) -> tuple[str, Any]:
        calls.append((ctx.request_id, ctx.plugin_name, method))
        return real_call(ctx, method, args)

    monkeypatch.setattr(pdk, "call", spy)
    fresh = login(edge.client, user.email)["access_token"]  # a token edge-jwt never saw
    counts = {}
    for label in ("miss", "hit"):
        response = edge.client.get(PROFILE, headers=bearer(fresh))
        assert response.status_code == 200, response.text
        rid = response.headers["x-kong-request-id"]
        methods = [m for r, p, m in calls if r == rid and p == "edge-jwt"]
        assert methods == [
            "kong.request.get_headers",
            "kong.request.get_method",
            "kong.nginx.get_var",
            "kong.service.request.set_headers",
            "kong.ctx.shared.set",
        ], methods
        counts[label] = len(methods)
    print(f"\nedge-jwt PDK round trips per accepted request: {counts}")
    assert counts == {"miss": 5, "hit": 5}


def test_metrics_count_validations(edge: Edge, user: User) -> None:
    before = edge.metric("edge_jwt_validations_total", result="accepted", reason="ok")
    assert edge.client.get(PROFILE, headers=bearer(user.access_token)).status_code == 200
    assert edge.metric("edge_jwt_validations_total", result="accepted", reason="ok") == before + 1
    assert edge.metric("edge_jwt_jwks_fetches_total", result="ok") >= 1


# --- rejections ---------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


def _claims(user: User, **overrides: Any) -> dict[str, Any]:
    now = _now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.id,
        "email": user.email,
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "token_use": "access",
        "amr": ["pwd"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_token_minted_with_the_backend_key_is_accepted(
    edge: Edge, user: User, issuer_key: IssuerKey
) -> None:
    """The control for the claim-level rejections below: only the named claim differs."""
    response = edge.client.get(PROFILE, headers=bearer(issuer_key.mint(_claims(user))))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(lambda now: {"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param(lambda now: {"aud": "another-api"}, id="wrong-aud"),
        pytest.param(
            lambda now: {"iat": now - 1000, "nbf": now - 1000, "exp": now - 100}, id="expired"
        ),
        pytest.param(lambda now: {"nbf": now + 300}, id="nbf-beyond-leeway"),
        pytest.param(lambda now: {"exp": now + 3600}, id="lifetime-over-max"),
        pytest.param(lambda now: {"token_use": "refresh"}, id="refresh-token-use"),
        pytest.param(lambda now: {"token_use": None}, id="no-token-use"),
        pytest.param(lambda now: {"jti": None}, id="no-jti"),
    ],
)
def test_claim_rejections(
    edge: Edge, user: User, issuer_key: IssuerKey, overrides: Callable[[int], dict[str, Any]]
) -> None:
    token = issuer_key.mint(_claims(user, **overrides(_now())))
    assert_edge_rejected(edge.client.get(PROFILE, headers=bearer(token)), 401, "invalid_token")


def test_no_token_is_a_bare_challenge(edge: Edge) -> None:
    assert_edge_rejected(edge.client.get(PROFILE), 401, None)
    assert_edge_rejected(
        edge.client.get(PROFILE, headers={"Authorization": "Basic dTpw"}), 401, None
    )


@pytest.mark.parametrize(
    "value",
    [
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer " + b64url(b'{"alg":"RS256"}') + "." + b64url(b"[]") + ".c2ln",
        "Bearer one two",
    ],
)
def test_malformed_tokens(edge: Edge, value: str) -> None:
    response = edge.client.get(PROFILE, headers={"Authorization": value})
    assert_edge_rejected(response, 401, "invalid_token")


def test_alg_none_is_rejected(edge: Edge, user: User) -> None:
    header_part = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = user.access_token.split(".")[1]
    for token in (f"{header_part}.{payload}.", f"{header_part}.{payload}"):
        assert_edge_rejected(edge.client.get(PROFILE, headers=bearer(token)), 401, "invalid_token")


def test_hs256_signed_with_the_rsa_public_key_is_rejected(edge: Edge, user: User) -> None:
    """Algorithm confusion: the published RSA key used as an HMAC secret."""
    jwks = edge.client.get("/api/auth/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(user.access_token)["kid"]
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
    public = RSAAlgorithm.from_jwk(json.dumps(jwk))
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    ):
        signing_input = (
            b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
            + "."
            + user.access_token.split(".")[1]
        )
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64url(signature)}"
        assert_edge_rejected(edge.client.get(PROFILE, headers=bearer(token)), 401, "invalid_token")


def test_unknown_kid_refetches_once_then_is_negatively_cached(
    edge: Edge, user: User, issuer_key: IssuerKey
) -> None:
    before = edge.metric("edge_jwt_jwks_fetches_total")
    kid = "unknown-" + secrets.token_hex(8)
    token = issuer_key.mint(_claims(user), kid=kid)
    for _ in range(3):
        assert_edge_rejected(edge.client.get(PROFILE, headers=bearer(token)), 401, "invalid_token")
    assert edge.metric("edge_jwt_jwks_fetches_total") - before <= 1


def test_tampered_payload_is_rejected(edge: Edge, user: User) -> None:
    head, payload, signature = user.access_token.split(".")
    claims = claims_of(user.access_token)
    claims["roles"] = [*claims["roles"], "staff"]
    forged = b64url(json.dumps(claims, separators=(",", ":")).encode())
    token = f"{head}.{forged}.{signature}"
    assert_edge_rejected(edge.client.get(PROFILE, headers=bearer(token)), 401, "invalid_token")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_edge_rejected(
        edge.client.get(PROFILE, headers=bearer(f"{head}.{payload}.{flipped}")),
        401,
        "invalid_token",
    )


def test_refresh_token_is_not_an_access_token(edge: Edge, user: User) -> None:
    assert_edge_rejected(
        edge.client.get(PROFILE, headers=bearer(user.refresh_token)), 401, "invalid_token"
    )


def test_oversized_token_is_rejected(edge: Edge, user: User) -> None:
    head, payload, signature = user.access_token.split(".")
    padded = f"{head}.{payload}{'A' * 9000}.{signature}"
    # Rejected, not parsed at length: the client's timeout is the hang guard, no time bound.
    response = edge.client.get(PROFILE, headers=bearer(padded))
    assert_edge_rejected(response, 401, "invalid_token")


def test_two_different_tokens_are_rejected(edge: Edge, user: User, issuer_key: IssuerKey) -> None:
    other = issuer_key.mint(_claims(user))
    response = edge.client.get(
        PROFILE,
        headers=[
            ("Authorization", f"Bearer {user.access_token}"),
            ("Authorization", f"Bearer {other}"),
        ],
    )
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    same = edge.client.get(
        PROFILE,
        headers=[
            ("Authorization", f"Bearer {user.access_token}"),
            ("Authorization", f"Bearer {user.access_token}"),
        ],
    )
    assert same.status_code == 200, same.text


def test_optional_route_rejects_a_bad_token_but_serves_anonymous(edge: Edge, user: User) -> None:
    anonymous = edge.client.get("/api/auth/.well-known/jwks.json")
    assert anonymous.status_code == 200
    assert_edge_rejected(
        edge.client.get("/api/auth/.well-known/jwks.json", headers=bearer("garbage.token.here")),
        401,
        "invalid_token",
    )
    with_token = edge.client.get("/api/auth/health/live/", headers=bearer(user.access_token))
    assert with_token.status_code == 200


def test_staff_route_requires_the_staff_role(edge: Edge, user: User, issuer_key: IssuerKey) -> None:
    path = f"/api/auth/seller/applications/{uuid.uuid4()}/decision"
    refused = edge.client.post(
        path, json={"decision": "approve"}, headers=bearer(user.access_token)
    )
    assert_edge_rejected(refused, 403, "insufficient_scope")
    # A staff token passes the edge; the backend then checks the user itself (not staff).
    staff = issuer_key.mint(_claims(user, roles=["user", "staff"]))
    passed = edge.client.post(path, json={"decision": "approve"}, headers=bearer(staff))
    assert "error" in passed.json(), passed.text  # the backend's error shape, not Kong's
    assert passed.status_code in (403, 404)


# --- spoofed identity -----------------------------------------------------------------------


SPOOFED = [
    ("X-User-Id", "00000000-0000-0000-0000-000000000001"),
    ("X-User_Id", "00000000-0000-0000-0000-000000000002"),
    ("x-identity-assertion", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"),
    ("X-USER-ROLES", "staff"),
    ("X-User-Anything", "x"),
]


def test_spoofed_identity_never_reaches_the_upstream(
    edge: Edge, user: User, upstream: Upstream
) -> None:
    anonymous = edge.client.get("/rec-open/a", headers=SPOOFED)
    assert anonymous.status_code == 200
    names = {k.lower().replace("_", "-") for k, _ in upstream.last["headers"]}
    assert not names & set(IDENTITY_HEADERS) and not any(n.startswith("x-user-") for n in names)

    headers = [*SPOOFED, *bearer(user.access_token).items()]
    authenticated = edge.client.get("/rec/b", headers=headers)
    assert authenticated.status_code == 200
    record = upstream.last
    assert header(record, "X-User-Id") == [user.id]
    assert header(record, "X-User-Roles") == [",".join(claims_of(user.access_token)["roles"])]
    assert header(record, "X-User_Id") == [] and header(record, "X-User-Anything") == []
    assert len(header(record, "X-Identity-Assertion")) == 1


def test_spoofed_header_past_the_hundredth_is_stripped(
    edge: Edge, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kong's get_headers() stops at 100 headers; edge-jwt asks for 1000."""
    import http.client

    monkeypatch.setattr(http.client, "_MAXHEADERS", 1000)  # the recording upstream's limit
    filler = [(f"X-Filler-{i}", "x") for i in range(120)]
    response = edge.client.get("/rec-open/c", headers=[*filler, ("X-User-Id", "evil")])
    assert response.status_code == 200
    assert header(upstream.last, "X-User-Id") == []
    assert len(header(upstream.last, "X-Filler-119")) == 1


def _header_lines(client: httpx.Client, total: int, last: tuple[str, str]) -> list[tuple[str, str]]:
    """Extra headers making a request of ``total`` header lines, ``last`` the final one."""
    base = len(client.build_request("GET", "/rec-open/x").headers.raw)
    return [*((f"h{i}", "x") for i in range(total - base - 1)), last]


def test_more_than_1000_header_lines_are_refused_before_edge_jwt(
    edge: Edge, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kong 3.9.3's nginx refuses header line 1001 (max_headers 1000, build/openresty/
    patches/nginx-1.25.3_17-CVE-2026-49975.patch) with kong/error_handlers.lua's 400."""
    import http.client

    monkeypatch.setattr(http.client, "_MAXHEADERS", 2000)  # the recording upstream's limit
    before = len(upstream.requests)
    headers = _header_lines(edge.client, 1001, ("X-User-Id", "evil"))
    response = edge.client.get("/rec-open/e", headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "Request header or cookie too large"
    assert len(upstream.requests) == before


def test_spoofed_header_past_line_1000_fails_closed(
    edge: Edge, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_headers raised (``nginx_proxy_max_headers``, an injected directive) or on a
    Kong without the limit, line 1001 reaches Kong, but kong.request.get_headers(1000)
    (kong/pdk/request.lua) shows edge-jwt only lines 1-1000: it must refuse the request
    (431, Kong's JSON error) rather than proxy an X-User-Id it could not see."""
    import http.client

    monkeypatch.setattr(http.client, "_MAXHEADERS", 2000)  # the recording upstream's limit
    # what nginx_proxy_max_headers = 2000 in kong.conf gives the gateway
    monkeypatch.setattr(edge.runner.gateway, "max_headers", 2000)
    before = len(upstream.requests)
    for total in (1001, 1500):
        headers = _header_lines(edge.client, total, ("X-User-Id", "evil"))
        response = edge.client.get("/rec-open/f", headers=headers)
        assert response.status_code == 431, response.text
        body = response.json()
        assert body == {
            "message": "Request header fields too large",
            "request_id": response.headers["x-kong-request-id"],
        }
    # Exactly 1000 lines: nginx lets them through, edge-jwt cannot tell there are no more.
    headers = _header_lines(edge.client, 1000, ("X-User-Id", "evil"))
    assert edge.client.get("/rec-open/g", headers=headers).status_code == 431
    assert len(upstream.requests) == before


def test_spoofed_underscore_variant_does_not_void_a_real_identity(edge: Edge, user: User) -> None:
    """The backend folds X-User_Id onto X-User-Id and would see a mismatch (anonymous, 401)
    had the edge let it through; stripped, the real identity works."""
    headers = [("X-User_Id", str(uuid.uuid4())), *bearer(user.access_token).items()]
    response = edge.client.get(PROFILE, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id


# --- keys unavailable -------------------------------------------------------------------------


def test_jwks_down_cached_keys_keep_working(edge: Edge, user: User, issuer_key: IssuerKey) -> None:
    assert edge.client.get("/flaky/profile", headers=bearer(user.access_token)).status_code == 200
    edge.jwks.up = False
    try:
        errors_before = edge.metric("edge_jwt_jwks_fetches_total", result="error")
        hits_before = edge.jwks.hits
        # An unknown kid forces a refetch, which fails: not the client's fault → 503.
        unknown = issuer_key.mint(_claims(user), kid="rotated-" + secrets.token_hex(6))
        down = edge.client.get("/flaky/profile", headers=bearer(unknown))
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"].isdigit()
        assert edge.jwks.hits > hits_before
        assert edge.metric("edge_jwt_jwks_fetches_total", result="error") > errors_before
        # The cached keys still decide known tokens, fresh ones too (not only the cache).
        fresh = issuer_key.mint(_claims(user))
        for token in (user.access_token, fresh):
            response = edge.client.get("/flaky/profile", headers=bearer(token))
            assert response.status_code == 200, response.text
    finally:
        edge.jwks.up = True


def test_no_keys_ever_is_503_with_retry_after(edge: Edge, user: User) -> None:
    response = edge.client.get("/nokeys/profile", headers=bearer(user.access_token))
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert set(response.json()) == {"message", "request_id"}
    assert "www-authenticate" not in response.headers
    # Deciding that no token was sent needs no key.
    assert_edge_rejected(edge.client.get("/nokeys/profile"), 401, None)


# --- revocation ---------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[Any]:
    import redis

    require(redis_unavailable(REDIS_TEST_URL))
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1, socket_timeout=2)
    yield client
    client.close()


def _redis_reads(
    client: Any, commands: frozenset[str] = frozenset({"get", "mget", "scan", "pttl", "ttl"})
) -> int:
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.split("|")[0].removeprefix("cmdstat_") in commands
    )


# The backend checks the token's revocation key itself (EXISTS, auth_backend.identity.store),
# at most once a second per token and gunicorn worker; the edge never uses EXISTS.
BACKEND_READS = frozenset({"exists"})


@pytest.mark.redis
def test_revoked_after_logout(edge: Edge, backend: Backend, user: User, redis_client: Any) -> None:
    session = login(edge.client, user.email)
    token = session["access_token"]
    assert edge.client.get(PROFILE, headers=bearer(token)).status_code == 200
    # The subscriber starts with the first revocation check; wait until it is listening.
    deadline = time.monotonic() + 10
    while redis_client.pubsub_numsub(backend.channel)[0][1] < 1:
        assert time.monotonic() < deadline, "edge-jwt never subscribed to revocations"
        time.sleep(0.05)
    reads = _redis_reads(redis_client)
    backend_reads = _redis_reads(redis_client, BACKEND_READS)
    started = time.monotonic()
    for _ in range(20):
        assert edge.client.get(PROFILE, headers=bearer(token)).status_code == 200
    elapsed = time.monotonic() - started
    assert _redis_reads(redis_client) == reads, "a Redis read per request"
    workers = int(backend.env["GUNICORN_WORKERS"])
    assert _redis_reads(redis_client, BACKEND_READS) - backend_reads <= workers * (
        int(elapsed) + 2
    ), "the backend's revocation answer is not cached"

    out = edge.client.post(
        "/api/auth/logout", json={"refresh_token": session["refresh_token"]}, headers=bearer(token)
    )
    assert out.status_code == 204, out.text
    # A wait, not a bound: the revocation is pushed (the subscriber learns it from the message
    # alone, kong-plugins/tests/jwt/test_revocation.py); how soon is not asserted here.
    deadline = time.monotonic() + 30
    while True:
        response = edge.client.get(PROFILE, headers=bearer(token))
        if response.status_code == 401:
            break
        assert response.status_code == 200
        assert time.monotonic() < deadline, "still accepted 30 s after logout"
        time.sleep(0.02)
    assert_edge_rejected(response, 401, "invalid_token")
    # Other sessions of the same user are untouched.
    assert edge.client.get(PROFILE, headers=bearer(user.access_token)).status_code == 200


# --- fail-open: the plugin server is gone -------------------------------------------------------


def test_killed_plugin_server_leaves_the_backend_anonymous(
    backend: Backend, user: User, upstream: Upstream
) -> None:
    """Kong proxies without the plugin when its server is down (the harness reproduces it):
    no assertion goes upstream, so the backend treats the caller as anonymous — even with a
    valid token and a spoofed X-User-Id — and the protected route answers 401 itself."""
    runner = edge_runner(backend, gateway_yml(backend, upstream_port=upstream.port), workers=1)
    runner.start()
    try:
        with runner.client() as client:
            assert client.get(PROFILE, headers=bearer(user.access_token)).status_code == 200
            runner.run(runner.gateway.processes["edge-jwt"].stop())
            spoofed = {
                **bearer(user.access_token),
                "X-User-Id": user.id,
                "X-User-Email": user.email,
            }
            response = client.get(PROFILE, headers=spoofed)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "not_authenticated"  # the backend's
            recorded = client.get("/rec/killed", headers=spoofed)
            assert recorded.status_code == 200
            assert header(upstream.last, "X-Identity-Assertion") == []
    finally:
        runner.stop()


def test_a_captured_assertion_is_not_replayable_at_the_backend(
    backend: Backend, user: User, upstream: Upstream
) -> None:
    """The attack: an assertion copied from gateway→backend traffic, sent again with no
    token — through the gateway while edge-jwt is knocked out (Kong fails open) or straight
    to the backend. The backend accepted it once, for its own request, and never again."""
    tap = Tap(backend.url)
    runner = edge_runner(
        backend, gateway_yml(backend, upstream_port=upstream.port, tap=tap), workers=1
    )
    runner.start()
    try:
        with runner.client() as client:
            response = client.get("/tapped/profile", headers=bearer(user.access_token))
            assert response.status_code == 200, response.text
            captured = {
                k: v
                for k, v in tap.captured[-1].items()
                if k.lower().startswith(("x-user-", "x-identity-assertion"))
            }
            claims = claims_of(captured["X-Identity-Assertion"])
            # minted for the path the backend received, not the one the client asked for
            assert (claims["req_method"], claims["req_path"]) == ("GET", PROFILE)

            runner.run(runner.gateway.processes["edge-jwt"].stop())
            for replay in (
                client.get(PROFILE, headers=captured),
                httpx.get(backend.url + PROFILE, headers=captured, timeout=10),
                httpx.patch(
                    backend.url + PROFILE, headers=captured, json={"bio": "pwned"}, timeout=10
                ),
            ):
                assert replay.status_code == 401, replay.text
                assert replay.json()["error"]["code"] == "not_authenticated"  # the backend's
    finally:
        runner.stop()
        tap.server.shutdown()


# --- key rotation (last: it changes the backend's signing key) ---------------------------------


def test_key_rotation_at_the_backend_needs_no_gateway_restart(
    edge: Edge, backend: Backend, user: User
) -> None:
    old_token = login(edge.client, user.email)["access_token"]
    assert edge.client.get("/rotation/profile", headers=bearer(old_token)).status_code == 200
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    backend.manage("rotate_signing_key")
    new_token = login(edge.client, user.email)["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    for token in (new_token, old_token):  # the previous key stays published
        response = edge.client.get("/rotation/profile", headers=bearer(token))
        assert response.status_code == 200, response.text
