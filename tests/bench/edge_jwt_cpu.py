"""Plugin-server CPU per request of edge-jwt, against a null plugin, in one run.

One gateway (one worker), two plugin servers, one recording upstream:
  null   edge-demo in "noop" mode: HandleEvent only, no PDK call — the fixed cost of any
         external plugin (RPC framing, kong-pdk's event loop)
  miss   edge-jwt with a token it has never seen: full RS256 validation + a new EdDSA
         identity assertion, 3 PDK calls
  hit    edge-jwt with the same token every time: verified-token and assertion caches,
         3 PDK calls
Tokens are minted here with an RSA key whose JWKS a local http.server serves (not the
backend, so minting is cheap and the keys are fetched once). Variants run in interleaved
blocks of ``--block`` requests so machine noise hits them alike; per block the CPU the
variant's plugin-server process used is read from /proc: ``utime+stime`` of
/proc/<pid>/stat (clock ticks, what ``ps``/``top`` show; too coarse for one block, so it is
reported over the whole run) and the nanosecond on-CPU time of /proc/<pid>/task/*/schedstat
(per block, for the median). CPU of the gateway and of the client is not counted.

    make bench            # or: python -m tests.bench.edge_jwt_cpu --blocks 30 --block 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.harness.support import HarnessRunner, free_port, start_upstream

ISSUER, AUDIENCE, KID = "https://bench.idp", "bench-api", "bench-rsa-1"
VARIANTS = ("null", "miss", "hit")
CLK_TCK = os.sysconf("SC_CLK_TCK")


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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def mint(private_key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "email": "b@example.com",
              "roles": ["user"], "scope": "profile", "jti": str(uuid.uuid4()), "iat": now,
              "nbf": now, "exp": now + 900, "token_use": "access"}
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


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU, summed over the process's threads (schedstat field 1)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total


def run(blocks: int, block: int, warmup: int) -> dict[str, Any]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = serve_jwks(private_key)
    upstream, upstream_server = start_upstream()
    workdir = Path(tempfile.mkdtemp(prefix="bench-jwt-"))
    from edge_plugins.jwt.assertion import generate_signing_key

    signing_key = workdir / "gateway.pem"
    generate_signing_key(signing_key, workdir / "gateway-jwks.json")
    servers = {"edge-jwt": {"EDGE_JWT_METRICS_PORT": str(free_port()),
                            "EDGE_JWT_SIGNING_KEY_FILE": str(signing_key)},
               "edge-demo": {}}
    yml = kong_yml(upstream.port, jwks.server_address[1], signing_key)
    # Fresh tokens for every miss request, minted before measuring.
    fresh = iter([mint(private_key) for _ in range(blocks * block + warmup)])
    same = mint(private_key)
    ns: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ticks = dict.fromkeys(VARIANTS, 0)
    try:
        with HarnessRunner(yml, servers=servers, commands={"edge-jwt": "edge-jwt"},
                           workers=1) as gateway:
            pids = {"null": gateway.gateway.processes["edge-demo"].pid,
                    "miss": gateway.gateway.processes["edge-jwt"].pid,
                    "hit": gateway.gateway.processes["edge-jwt"].pid}
            with httpx.Client(base_url=gateway.url, trust_env=False) as client:
                def request(variant: str) -> None:
                    if variant == "null":
                        response = client.get("/null")
                    else:
                        token = next(fresh) if variant == "miss" else same
                        response = client.get("/jwt", headers={"Authorization": f"Bearer {token}"})
                    assert response.status_code == 200, response.text

                for _ in range(warmup):
                    for variant in ("null", "hit"):
                        request(variant)
                request("miss")
                for _ in range(blocks):
                    for variant in VARIANTS:
                        pid = pids[variant]
                        assert pid is not None
                        t0, n0 = cpu_ticks(pid), cpu_ns(pid)
                        for _ in range(block):
                            request(variant)
                        ticks[variant] += cpu_ticks(pid) - t0
                        ns[variant].append((cpu_ns(pid) - n0) / block / 1000)
                    upstream.requests.clear()
    finally:
        upstream_server.shutdown()
        jwks.shutdown()
    total = blocks * block
    return {
        "median_us": {v: statistics.median(ns[v]) for v in VARIANTS},
        "p90_us": {v: statistics.quantiles(ns[v], n=10)[-1] if len(ns[v]) > 1 else ns[v][0]
                   for v in VARIANTS},
        "stat_us": {v: ticks[v] / CLK_TCK * 1e6 / total for v in VARIANTS},
        "requests": total,
    }


def report(result: dict[str, Any]) -> str:
    med, p90, stat = result["median_us"], result["p90_us"], result["stat_us"]
    lines = [f"plugin-server CPU per request, {result['requests']} requests per variant",
             f"{'variant':<8} {'median µs':>10} {'p90 µs':>9} {'stat µs':>9} "
             f"{'x null':>7} {'Δ null µs':>10}"]
    for v in VARIANTS:
        lines.append(f"{v:<8} {med[v]:>10.0f} {p90[v]:>9.0f} {stat[v]:>9.0f} "
                     f"{med[v] / med['null']:>7.2f} {med[v] - med['null']:>+10.0f}")
    lines.append("median/p90: schedstat per block; stat: utime+stime over the whole run "
                 f"({1000 / CLK_TCK:.0f} ms ticks). null = edge-demo noop (HandleEvent only).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    print(report(run(args.blocks, args.block, args.warmup)))


if __name__ == "__main__":
    main()
