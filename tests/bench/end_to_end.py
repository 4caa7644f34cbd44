"""Profile GET through the gateway against straight to the backend: throughput ratio.

The real backend (gunicorn, tests/support/backend.py) behind the harness gateway running
kong/kong.yml's chain (tests/load/stack.py: limits raised). One user signs up through the
gateway; then ``clients`` threads read its profile for ``seconds`` each way, interleaved:

* gateway: ``Authorization: Bearer <access token>`` to the gateway (edge-trace, edge-jwt,
  edge-rate-limit, then the backend);
* direct: to the backend's port with the identity assertion the gateway would have sent,
  minted per request by the client with the gateway's key (assertions are single-use).

The harness gateway is Python in this process; Kong's nginx would cost less, so the ratio
is a floor for what the plugins leave of the backend's throughput.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.bench.measure import percentile
from tests.load.stack import PROFILE, Journey, metrics_ports, one_user, stack_runner
from tests.support.backend import running_backend


def _throughput(
    send: Callable[[httpx.Client], int], base_url: str, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    started = time.monotonic()

    def client() -> None:
        with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as http:
            while time.monotonic() - started < seconds:
                t0 = time.perf_counter()
                status = send(http)
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(took)
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "statuses": statuses,
    }


def run(clients: int, seconds: float, rounds: int) -> dict[str, Any]:
    from edge_plugins.jwt.assertion import AssertionSigner, RequestBinding

    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    with running_backend(workdir) as backend:
        rl_prefix = f"bench-e2e-rl-{uuid.uuid4().hex[:12]}"
        with stack_runner(backend, rl_prefix, metrics_ports()) as gateway:
            journey = Journey()
            with gateway.client() as http:
                one_user(http, backend, journey, profiles=1)
            if not journey.tokens:
                raise RuntimeError(f"sign-up through the gateway failed: {dict(journey.statuses)}")
            token = journey.tokens[0]
            claims = jwt.decode(token, options={"verify_signature": False})
            signer = AssertionSigner(str(backend.gateway_key), issuer="kong-edge")
            binding = RequestBinding("GET", PROFILE)

            def via_gateway(http: httpx.Client) -> int:
                return http.get(PROFILE, headers={"Authorization": f"Bearer {token}"}).status_code

            def direct(http: httpx.Client) -> int:
                assertion = signer.sign(claims, "auth-backend", request=binding)
                return http.get(PROFILE, headers={"X-Identity-Assertion": assertion}).status_code

            for send, url in ((via_gateway, gateway.url), (direct, backend.url)):
                _throughput(send, url, clients, min(1.0, seconds))  # warm-up
            results: dict[str, list[dict[str, Any]]] = {"gateway": [], "direct": []}
            for _ in range(rounds):
                results["gateway"].append(_throughput(via_gateway, gateway.url, clients, seconds))
                results["direct"].append(_throughput(direct, backend.url, clients, seconds))
    out: dict[str, Any] = {}
    for name, found in results.items():
        requests = sum(r["requests"] for r in found)
        statuses: dict[int, int] = {}
        for r in found:
            for status, count in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        out[name] = {
            "requests": requests,
            "requests_per_second": requests / sum(r["seconds"] for r in found),
            "p50_ms": sorted(r["p50_ms"] for r in found)[len(found) // 2],
            "p99_ms": max(r["p99_ms"] for r in found),
            "statuses": statuses,
        }
    out["ratio"] = out["gateway"]["requests_per_second"] / out["direct"]["requests_per_second"]
    return out
