"""Plugin-server CPU per request of edge-trace, against a null plugin, in one run.

One gateway (one worker), two plugin servers, one recording upstream, one OTLP receiver:
  null       edge-demo in "noop" mode: HandleEvent only, no PDK call — the fixed cost of
             any external plugin (RPC framing, kong-pdk's event loop)
  trace      edge-trace, incoming traceparent, sampled, the gateway span exported over
             OTLP/HTTP: 3 PDK calls in access + 1 in log (2 HandleEvents)
  untraced   edge-trace without an OTLP endpoint: 3 PDK calls in access, no log work
How CPU is measured: tests/bench/plugin_cpu.py.

    make bench            # or: python -m tests.bench.edge_trace_cpu --blocks 30 --block 200
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

import httpx

from tests.bench.plugin_cpu import measure, report
from tests.harness.support import HarnessRunner, free_port, start_upstream
from tests.otlp_receiver import OtlpReceiver


def kong_yml(upstream_port: int, otlp_endpoint: str) -> str:
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}
        routes:
          - {{name: null, paths: [/null]}}
          - {{name: trace, paths: [/trace]}}
          - {{name: untraced, paths: [/untraced]}}
    plugins:
      - {{name: edge-demo, route: null, config: {{mode: noop}}}}
      - name: edge-trace
        route: trace
        config: {{otlp_endpoint: "{otlp_endpoint}", otlp_flush_interval_ms: 200}}
      - {{name: edge-trace, route: untraced, config: {{}}}}
    """


def run(blocks: int, block: int, warmup: int) -> dict[str, Any]:
    upstream, upstream_server = start_upstream()
    receiver = OtlpReceiver().start()
    servers: dict[str, dict[str, str]] = {"edge-trace": {}, "edge-demo": {}}
    try:
        command = f"edge-trace --metrics-port {free_port()}"
        with HarnessRunner(
            kong_yml(upstream.port, receiver.endpoint),
            servers=servers,
            commands={"edge-trace": command},
            workers=1,
        ) as gateway:
            tracer = gateway.gateway.processes["edge-trace"].pid
            pids = {
                "null": gateway.gateway.processes["edge-demo"].pid,
                "trace": tracer,
                "untraced": tracer,
            }
            with httpx.Client(base_url=gateway.url, trust_env=False) as client:

                def get(path: str) -> None:
                    parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
                    response = client.get(path, headers={"traceparent": parent})
                    assert response.status_code == 200, response.text

                requests = {
                    "null": lambda: get("/null"),
                    "trace": lambda: get("/trace"),
                    "untraced": lambda: get("/untraced"),
                }
                for _ in range(warmup):
                    for send in requests.values():
                        send()
                result = measure(requests, pids, blocks=blocks, block=block)
                gateway.drain_logs()
        exported = len(receiver.spans)
    finally:
        upstream_server.shutdown()
        receiver.stop()
    result["exported"] = exported
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    result = run(args.blocks, args.block, args.warmup)
    print(report(result, "null = edge-demo noop (HandleEvent only)."))
    print(
        f"spans received by the OTLP receiver: {result['exported']} "
        f"(trace variant sent {result['requests'] + args.warmup})"
    )


if __name__ == "__main__":
    main()
