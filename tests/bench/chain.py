"""The edge plugins, alone and as the whole chain, beside the floor and a typical plugin.

One gateway (one worker) in front of a recording upstream, twelve plugin servers:

* ours: edge-trace (no collector), edge-jwt, edge-rate-limit (Redis policy) — gevent mode;
* the floor: three copies of the harness's edge-demo in ``noop`` mode (``null-1..3``, at
  the priorities of ours) — the same gevent mode, no PDK call: the fixed cost of an
  external plugin (RPC framing, kong-pdk's event loop);
* typical: tests/bench/plugins/typical_*.py — plain kong-pdk in its default threads mode,
  a PDK call per header, PyJWT ``jwt.decode`` on every request, a Redis INCR fixed window;
  the same three again in kong-pdk's gevent mode (``typical-*-gevent``); and their floor,
  ``typical-null-1..3`` (tests/bench/plugins/typical_null.py): the same
  mode, no PDK call — so a difference of modes is not taken for a difference of plugins.

Beside it, a second gateway serves our chain as it ran before edge_plugins.pdk_bridge:
kong-pdk's own bridge (``--kong-pdk-bridge``) and edge-trace with its log phase
(``--export-spans``, no collector), so "edge chain" and "edge chain before" compare the
runtime and the dropped idle log event on the same run.

Runtime floor: three copies of tests/bench/plugins/chain_probe.py (``probe-*``) make the
chain's PDK calls with none of the plugins' logic, on our bridge (first gateway) and on
kong-pdk's with edge-trace's idle log event (second gateway): what each runtime costs the
chain, so the edge chain less its floor is what the plugins' own Python costs.

A third gateway serves our chain from one process (tests/bench/plugins/one_process.py: the
three plugins on one socket, as Kong 3.9.3 allows), "edge chain, one process": what one
process instead of three would save, with the same messages.

Every request carries the same valid RS256 token (edge-jwt's verified-token cache hits),
except ``jwt miss``, which sends a token never seen. Limits are far above what the run
sends: the happy path is measured. The tokens' JWKS is served here, not by the backend.

Then, on the same gateway: a flood of tokens with unknown ``kid``s against an edge-jwt
whose ``jwks_refetch_interval_seconds`` is 1 (the refetches must stay at that cap), and the
soak: many requests through the chain, plugin-server RSS and greenlets before and after.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.bench.measure import PdkCounter, Variant, footprint, measure, server_pid
from tests.support.harness import (
    BASE_SERVER_FLAGS,
    BIN_DIR,
    KONG_PDK_BRIDGE_FLAGS,
    HarnessRunner,
    free_port,
    serve_in_thread,
    start_upstream,
)
from tests.support.services import REDIS_TEST_URL

ISSUER, AUDIENCE, KID = "https://bench.idp", "bench-api", "bench-rsa-1"
PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"
OURS = ("edge-trace", "edge-jwt", "edge-rate-limit")
NULLS = {"null-1": 100000, "null-2": 1450, "null-3": 910}  # at the priorities of ours
TYPICAL = ("typical-trace", "typical-jwt", "typical-rate-limit")
# The same typical plugins in kong-pdk's gevent mode (``-g``), under these names.
TYPICAL_GEVENT = {name: f"{name}-gevent" for name in TYPICAL}
TYPICAL_NULLS = {"typical-null-1": 100000, "typical-null-2": 1450, "typical-null-3": 910}
# The chain's PDK calls without the plugins' logic: probe name -> (whose calls, priority).
PROBES = {
    "probe-trace": ("edge-trace", 100000),
    "probe-jwt": ("edge-jwt", 1450),
    "probe-rate-limit": ("edge-rate-limit", 910),
}
PROBE_CHAIN = "probe-chain"
UNLIMITED = 1_000_000_000  # per minute: never the thing measured
FLOOD_REFETCH_INTERVAL = 1  # seconds: the cap under test is one refetch per second


class JwksServer:
    """Serves the bench key set on ``/jwks.json`` and ``/flood.json``, counting fetches."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()
        self.fetches: list[tuple[str, float]] = []
        fetches = self.fetches

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fetches.append((self.path, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server: ThreadingHTTPServer = serve_in_thread(Handler)

    def uri(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def count(self, path: str, since: float = 0.0) -> int:
        return sum(1 for p, at in self.fetches if p == path and at >= since)


def mint(private_key: rsa.RSAPrivateKey, subject: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject or str(uuid.uuid4()),
        "email": "bench@example.com",
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 7200,  # longer than the slowest run: an expired token measures 401s
        "token_use": "access",
    }
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": KID})


def unknown_kid_token() -> str:
    """A well-formed RS256 token naming a ``kid`` nobody published (signature junk: the
    key lookup comes before verification, and so does the refetch it may cause)."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "JWT", "kid": secrets.token_hex(8)}
    signature = base64.urlsafe_b64encode(secrets.token_bytes(256)).rstrip(b"=").decode()
    return f"{part(header)}.{part({'iss': ISSUER, 'sub': 'x'})}.{signature}"


def kong_yml(upstream_port: int, jwks: JwksServer, signing_key: Path, rl_prefix: str) -> str:
    edge_jwt = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks_uri": jwks.uri("/jwks.json"),
        "assertion_audience": "bench-upstream",
        "assertion_signing_key_file": str(signing_key),
    }
    edge_rate_limit = {
        "limits": [{"limit": UNLIMITED, "period": "minute"}],
        "limit_by": "subject",
        "policy": "redis",
        "redis": {"url": REDIS_TEST_URL, "key_prefix": rl_prefix, "timeout_ms": 2000},
    }
    typical_jwt = {"jwks_uri": jwks.uri("/jwks.json"), "issuer": ISSUER, "audience": AUDIENCE}
    typical_rl = {
        "redis_url": REDIS_TEST_URL,
        "key_prefix": f"{rl_prefix}-typical",
        "limit": UNLIMITED,
    }
    routes: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "none": [],
        "null-1": [("null-1", {"mode": "noop"})],
        "null-chain": [(name, {"mode": "noop"}) for name in NULLS],
        "typical-null-1": [("typical-null-1", {})],
        "typical-null-chain": [(name, {}) for name in TYPICAL_NULLS],
        "edge-trace": [("edge-trace", {})],
        "edge-jwt": [("edge-jwt", edge_jwt)],
        "edge-rate-limit": [("edge-rate-limit", edge_rate_limit)],
        "edge-chain": [
            ("edge-trace", {}),
            ("edge-jwt", edge_jwt),
            ("edge-rate-limit", edge_rate_limit),
        ],
        PROBE_CHAIN: [(name, {"plugin": plugin}) for name, (plugin, _) in PROBES.items()],
        "typical-trace": [("typical-trace", {})],
        "typical-jwt": [("typical-jwt", typical_jwt)],
        "typical-rate-limit": [("typical-rate-limit", typical_rl)],
        "typical-chain": [
            ("typical-trace", {}),
            ("typical-jwt", typical_jwt),
            ("typical-rate-limit", typical_rl),
        ],
        **{
            f"{name}-gevent": [(TYPICAL_GEVENT[name], config)]
            for name, config in (
                ("typical-trace", {}),
                ("typical-jwt", typical_jwt),
                ("typical-rate-limit", typical_rl),
            )
        },
        "typical-chain-gevent": [
            (TYPICAL_GEVENT["typical-trace"], {}),
            (TYPICAL_GEVENT["typical-jwt"], typical_jwt),
            (TYPICAL_GEVENT["typical-rate-limit"], typical_rl),
        ],
        "jwks-flood": [
            (
                "edge-jwt",
                dict(
                    edge_jwt,
                    jwks_uri=jwks.uri("/flood.json"),
                    jwks_refetch_interval_seconds=FLOOD_REFETCH_INTERVAL,
                ),
            )
        ],
    }
    doc = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": f"http://127.0.0.1:{upstream_port}",
                "routes": [{"name": name, "paths": [f"/{name}"]} for name in routes],
            }
        ],
        "plugins": [
            {"name": plugin, "route": route, "config": config}
            for route, plugins in routes.items()
            for plugin, config in plugins
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class ChainSettings:
    blocks: int
    block: int
    warmup: int
    flood_seconds: float
    flood_clients: int
    soak_requests: int
    soak_clients: int


def _runner(yml: str, metrics_ports: dict[str, int]) -> HarnessRunner:
    python = BIN_DIR / "python"
    servers: dict[str, dict[str, str]] = {
        name: {"EDGE_DEMO_NAME": name, "EDGE_DEMO_PRIORITY": str(prio)}
        for name, prio in NULLS.items()
    }
    servers.update(
        {
            name: {"TYPICAL_NULL_NAME": name, "TYPICAL_NULL_PRIORITY": str(prio)}
            for name, prio in TYPICAL_NULLS.items()
        }
    )
    servers.update({name: {} for name in (*OURS, *TYPICAL)})
    servers.update(_probe_servers())
    servers.update({copy: {"TYPICAL_NAME": copy} for copy in TYPICAL_GEVENT.values()})
    commands = {name: f"{name} --metrics-port {metrics_ports[name]}" for name in OURS}
    commands.update(
        {name: f"{python} {PLUGINS_DIR / (name.replace('-', '_') + '.py')}" for name in TYPICAL}
    )
    commands.update(
        {
            copy: f"{python} {PLUGINS_DIR / (name.replace('-', '_') + '.py')}"
            for name, copy in TYPICAL_GEVENT.items()
        }
    )
    typical_null = f"{python} {PLUGINS_DIR / 'typical_null.py'}"
    commands.update(dict.fromkeys(TYPICAL_NULLS, typical_null))
    commands.update(_probe_commands())
    # kong-pdk's defaults for the typical plugins: threads mode, Lua-style returns.
    flags = dict.fromkeys((*TYPICAL, *TYPICAL_NULLS), "")
    flags.update(dict.fromkeys(TYPICAL_GEVENT.values(), "-g"))  # gevent, still Lua-style
    flags.update(dict.fromkeys((*OURS, *NULLS, *PROBES), BASE_SERVER_FLAGS))
    return HarnessRunner(yml, servers=servers, commands=commands, flags=flags, workers=1)


def _probe_servers() -> dict[str, dict[str, str]]:
    return {
        name: {"CHAIN_PROBE_NAME": name, "CHAIN_PROBE_PRIORITY": str(prio)}
        for name, (_, prio) in PROBES.items()
    }


def _probe_commands(with_log: bool = False) -> dict[str, str]:
    probe = f"{BIN_DIR / 'python'} {PLUGINS_DIR / 'chain_probe.py'} --metrics-port 0"
    commands = dict.fromkeys(PROBES, probe)
    if with_log:  # edge-trace's place: an idle log event, as --export-spans declared
        commands["probe-trace"] += " --with-log"
    return commands


def _before_runner(yml: str) -> HarnessRunner:
    """Our chain as it ran before: kong-pdk's bridge, edge-trace with its log phase; and
    the probes' chain the same way (its runtime floor)."""
    commands = {name: f"{name} --metrics-port 0" for name in OURS}
    commands["edge-trace"] += " --export-spans"
    commands.update(_probe_commands(with_log=True))
    return HarnessRunner(
        yml,
        servers={**{name: {} for name in OURS}, **_probe_servers()},
        commands=commands,
        flags=dict.fromkeys((*OURS, *PROBES), KONG_PDK_BRIDGE_FLAGS),
        workers=1,
    )


ONE_PROCESS_SOCKET = "edge-plugins.socket"


def _one_process_runner(yml: str) -> HarnessRunner:
    """Our chain served by one process (tests/bench/plugins/one_process.py) on one socket:
    edge-trace's entry starts it, edge-jwt's and edge-rate-limit's name the same socket and
    no start command (docs/plugin-runtime.md)."""
    commands = {name: f"{name} --metrics-port 0" for name in OURS}
    commands["edge-trace"] = f"{BIN_DIR / 'python'} {PLUGINS_DIR / 'one_process.py'}"
    return HarnessRunner(
        yml,
        servers={name: {} for name in OURS},
        commands=commands,
        flags=dict.fromkeys(OURS, BASE_SERVER_FLAGS),
        workers=1,
        sockets=dict.fromkeys(OURS, ONE_PROCESS_SOCKET),
        external=OURS[1:],
    )


def _chain_only(yml: str, routes: tuple[str, ...] = ("edge-chain",)) -> str:
    """The bench's kong.yml with these routes (the chain's) and their plugins only."""
    doc = yaml.safe_load(yml)
    doc["services"][0]["routes"] = [r for r in doc["services"][0]["routes"] if r["name"] in routes]
    doc["plugins"] = [p for p in doc["plugins"] if p["route"] in routes]
    return yaml.safe_dump(doc, sort_keys=False)


def _check_probes(results: dict[str, dict[str, float]]) -> None:
    """The floor is only the chain's floor if the probes make the chain's round trips."""
    edge = results["edge chain"]["pdk_per_request"]
    for name in ("runtime floor", "runtime floor before"):
        if results[name]["pdk_per_request"] != edge:
            raise RuntimeError(
                f"{name}: {results[name]['pdk_per_request']} PDK calls a request, the edge "
                f"chain {edge}: tests/bench/plugins/chain_probe.py CALLS is out of date"
            )


def _flood(
    gateway: HarnessRunner, jwks: JwksServer, seconds: float, clients: int
) -> dict[str, Any]:
    """Unknown-``kid`` tokens from ``clients`` threads for ``seconds``; JWKS refetches/s."""
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as client:
        # The first fetch (lazy, on the first token) is not a refetch.
        first = client.get(
            "/jwks-flood", headers={"Authorization": f"Bearer {unknown_kid_token()}"}
        )
        assert first.status_code == 401, first.text
    started = time.monotonic()
    before = jwks.count("/flood.json")
    sent = [0] * clients
    statuses: collections.Counter[int] = collections.Counter()

    def flood(index: int) -> None:
        with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as client:
            while time.monotonic() - started < seconds:
                token = unknown_kid_token()
                response = client.get("/jwks-flood", headers={"Authorization": f"Bearer {token}"})
                statuses[response.status_code] += 1
                sent[index] += 1

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    refetches = jwks.count("/flood.json") - before
    return {
        "seconds": elapsed,
        "requests": sum(sent),
        "statuses": dict(statuses),
        "refetches": refetches,
        "refetches_per_second": refetches / elapsed,
        "cap_per_second": 1 / FLOOD_REFETCH_INTERVAL,
    }


async def _asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """One GET through the gateway's ASGI app (everything the gateway does but HTTP
    parsing); answers the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _soak(
    gateway: HarnessRunner,
    token: str,
    processes: dict[str, tuple[int, str]],
    requests: int,
    clients: int,
) -> dict[str, Any]:
    """``requests`` through the chain, ``clients`` at a time, straight into the gateway's
    ASGI app (the HTTP listener and client would triple the time on 2 cores and are not what
    is soaked); plugin-server footprint after a warm-up at the same concurrency and after."""
    headers = [(b"authorization", f"Bearer {token}".encode())]
    statuses: collections.Counter[int] = collections.Counter()

    async def drive(count: int) -> None:
        remaining = count

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                statuses[await _asgi_get(gateway.gateway, "/edge-chain", headers)] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        await gateway.gateway.drain_logs()

    gateway.run(drive(max(clients * 50, requests // 50)), timeout=600)  # connections, caches
    statuses.clear()
    # Halfway too: a pool's high-water mark shows in the first half only, a leak in both.
    before = footprint(processes)
    started = time.monotonic()
    gateway.run(drive(requests // 2), timeout=3600)
    halfway = footprint(processes)
    gateway.run(drive(requests - requests // 2), timeout=3600)
    elapsed = time.monotonic() - started
    after = footprint(processes)
    if set(statuses) != {200}:  # a soak of errors would say nothing about the happy path
        raise RuntimeError(f"soak answers other than 200: {dict(statuses)}")
    return {
        "requests": requests,
        "seconds": elapsed,
        "statuses": dict(statuses),
        "before": before,
        "halfway": halfway,
        "after": after,
    }


def run(settings: ChainSettings) -> dict[str, Any]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = JwksServer(private_key)
    upstream, upstream_server = start_upstream()
    upstream.requests = collections.deque(maxlen=100)  # type: ignore[assignment]  # bounded
    workdir = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    from edge_plugins.jwt.assertion import generate_signing_key

    signing_key = workdir / "gateway.pem"
    generate_signing_key(signing_key, workdir / "gateway-jwks.json")
    rl_prefix = f"bench-rl-{uuid.uuid4().hex[:12]}"
    metrics_ports = {name: free_port() for name in OURS}
    total = settings.blocks * settings.block
    fresh = iter([mint(private_key) for _ in range(total + 1)])  # before measuring
    token = mint(private_key, subject="bench-user")
    counter = PdkCounter()
    try:
        yml = kong_yml(upstream.port, jwks, signing_key, rl_prefix)
        with (
            _runner(yml, metrics_ports) as gateway,
            _before_runner(_chain_only(yml, ("edge-chain", PROBE_CHAIN))) as before,
            _one_process_runner(_chain_only(yml)) as together,
            counter.installed(),
        ):
            servers = (
                *NULLS,
                *OURS,
                *PROBES,
                *TYPICAL,
                *TYPICAL_GEVENT.values(),
                *TYPICAL_NULLS,
            )
            pid = {name: server_pid(gateway, name) for name in servers}
            before_pids = tuple(server_pid(before, name) for name in OURS)
            before_probe_pids = tuple(server_pid(before, name) for name in PROBES)
            together_pid = server_pid(together, OURS[0])  # the one process
            with (
                httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as client,
                httpx.Client(base_url=before.url, trust_env=False, timeout=30) as before_client,
                httpx.Client(base_url=together.url, trust_env=False, timeout=30) as together_client,
            ):

                def sender(
                    path: str,
                    tokens: Callable[[], str] = lambda: token,
                    client: httpx.Client = client,
                ) -> Callable[[], None]:
                    def send() -> None:
                        parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
                        headers = {"Authorization": f"Bearer {tokens()}", "traceparent": parent}
                        response = client.get(path, headers=headers)
                        assert response.status_code == 200, (
                            path,
                            response.status_code,
                            response.text,
                        )

                    return send

                def variant(name: str, path: str, pids: tuple[str, ...], **kw: Any) -> Variant:
                    return Variant(name, sender(path, **kw), tuple(pid[p] for p in pids))

                variants = [
                    variant("none", "/none", ()),
                    variant("null x1", "/null-1", ("null-1",)),
                    variant("null x3", "/null-chain", tuple(NULLS)),
                    variant("edge-trace", "/edge-trace", ("edge-trace",)),
                    variant("edge-jwt hit", "/edge-jwt", ("edge-jwt",)),
                    variant(
                        "edge-jwt miss", "/edge-jwt", ("edge-jwt",), tokens=lambda: next(fresh)
                    ),
                    variant("edge-rate-limit", "/edge-rate-limit", ("edge-rate-limit",)),
                    variant("edge chain", "/edge-chain", OURS),
                    Variant(
                        "edge chain before",
                        sender("/edge-chain", client=before_client),
                        before_pids,
                    ),
                    variant("runtime floor", f"/{PROBE_CHAIN}", tuple(PROBES)),
                    Variant(
                        "runtime floor before",
                        sender(f"/{PROBE_CHAIN}", client=before_client),
                        before_probe_pids,
                    ),
                    Variant(
                        "edge chain, one process",
                        sender("/edge-chain", client=together_client),
                        (together_pid,),
                    ),
                    variant("typical-trace", "/typical-trace", ("typical-trace",)),
                    variant("typical-jwt", "/typical-jwt", ("typical-jwt",)),
                    variant("typical-rate-limit", "/typical-rate-limit", ("typical-rate-limit",)),
                    variant("typical chain", "/typical-chain", TYPICAL),
                    *(
                        variant(f"{name}-gevent", f"/{name}-gevent", (copy,))
                        for name, copy in TYPICAL_GEVENT.items()
                    ),
                    variant(
                        "typical chain-gevent",
                        "/typical-chain-gevent",
                        tuple(TYPICAL_GEVENT.values()),
                    ),
                    variant("typical null x1", "/typical-null-1", ("typical-null-1",)),
                    variant("typical null x3", "/typical-null-chain", tuple(TYPICAL_NULLS)),
                ]
                for _ in range(settings.warmup):
                    for v in variants:
                        if v.name != "edge-jwt miss":
                            v.send()
                variants[5].send()  # the miss variant's first token: JWKS fetched, not timed
                results = measure(variants, counter, blocks=settings.blocks, block=settings.block)
                _check_probes(results)

            flood = _flood(gateway, jwks, settings.flood_seconds, settings.flood_clients)

            processes = {
                name: (pid[name], f"http://127.0.0.1:{metrics_ports[name]}/metrics")
                for name in OURS
            }
            # A token minted now: the one above may expire (15 min) before a slow run's soak.
            soak_token = mint(private_key, subject="bench-user")
            soak = _soak(
                gateway, soak_token, processes, settings.soak_requests, settings.soak_clients
            )
    finally:
        upstream_server.shutdown()
        jwks.server.shutdown()
        _delete_keys(f"{rl_prefix}*")
    return {"variants": results, "jwks_flood": flood, "soak": soak}


def _delete_keys(pattern: str) -> None:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
