"""Plugin-server CPU per request of edge-jwt, against a null plugin, in one run.

One gateway (one worker), two plugin servers, one recording upstream:
  null   edge-demo in "noop" mode: HandleEvent only, no PDK call — the fixed cost of any
         external plugin (RPC framing, kong-pdk's event loop)
  miss   edge-jwt with a token it has never seen: full RS256 validation + a new EdDSA
         identity assertion, 5 PDK calls
  hit    edge-jwt with the same token every time: verified-token cache, still a new
         assertion (each is bound to its request), 5 PDK calls
Tokens are minted here with an RSA key whose JWKS a local http.server serves (not the
backend, so minting is cheap and the keys are fetched once). How CPU is measured:
tests/bench/plugin_cpu.py.

    make bench            # or: python -m tests.bench.edge_jwt_cpu --blocks 30 --block 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.bench.plugin_cpu import measure, report
from tests.harness.support import HarnessRunner, free_port, serve_in_thread, start_upstream

ISSUER, AUDIENCE, KID = "https://bench.idp", "bench-api", "bench-rsa-1"


def serve_jwks(private_key: rsa.RSAPrivateKey) -> ThreadingHTTPServer:
    jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return serve_in_thread(Handler)


def mint(private_key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "email": "b@example.com",
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "token_use": "access",
    }
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": KID})


def kong_yml(upstream_port: int, jwks_port: int, signing_key: Path) -> str:
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}
        routes:
          - {{name: null, paths: [/null]}}
          - {{name: jwt, paths: [/jwt]}}
    plugins:
      - {{name: edge-demo, route: null, config: {{mode: noop}}}}
      - name: edge-jwt
        route: jwt
        config:
          issuer: {ISSUER}
          audiences: [{AUDIENCE}]
          jwks_uri: http://127.0.0.1:{jwks_port}/jwks.json
          assertion_audience: bench-upstream
          assertion_signing_key_file: {signing_key}
    """


def run(blocks: int, block: int, warmup: int) -> dict[str, Any]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = serve_jwks(private_key)
    upstream, upstream_server = start_upstream()
    workdir = Path(tempfile.mkdtemp(prefix="bench-jwt-"))
    from edge_plugins.jwt.assertion import generate_signing_key

    signing_key = workdir / "gateway.pem"
    generate_signing_key(signing_key, workdir / "gateway-jwks.json")
    servers: dict[str, dict[str, str]] = {"edge-jwt": {}, "edge-demo": {}}
    yml = kong_yml(upstream.port, jwks.server_address[1], signing_key)
    # Fresh tokens for every miss request, minted before measuring.
    fresh = iter([mint(private_key) for _ in range(blocks * block + warmup)])
    same = mint(private_key)
    try:
        command = f"edge-jwt --metrics-port {free_port()}"
        with HarnessRunner(
            yml, servers=servers, commands={"edge-jwt": command}, workers=1
        ) as gateway:
            pids = {
                "null": gateway.gateway.processes["edge-demo"].pid,
                "miss": gateway.gateway.processes["edge-jwt"].pid,
                "hit": gateway.gateway.processes["edge-jwt"].pid,
            }
            with httpx.Client(base_url=gateway.url, trust_env=False) as client:

                def get(path: str, token: str | None = None) -> None:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200, response.text

                requests = {
                    "null": lambda: get("/null"),
                    "miss": lambda: get("/jwt", next(fresh)),
                    "hit": lambda: get("/jwt", same),
                }
                for _ in range(warmup):
                    requests["null"]()
                    requests["hit"]()
                requests["miss"]()
                result = measure(requests, pids, blocks=blocks, block=block)
    finally:
        upstream_server.shutdown()
        jwks.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    print(
        report(
            run(args.blocks, args.block, args.warmup), "null = edge-demo noop (HandleEvent only)."
        )
    )


if __name__ == "__main__":
    main()
