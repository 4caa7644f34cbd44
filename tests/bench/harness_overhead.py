"""Per-request cost of the harness and of PDK round trips, side by side in one run.

Routes on one gateway (one worker, one plugin server) differ only in the plugin:
  none      no plugin: the harness's own proxying cost
  demo-0    edge-demo in "noop" mode: HandleEvent only, 0 PDK calls
  demo-2    edge-demo in "headers" mode: 2 PDK calls (one upstream, one response header)
Requests are interleaved round-robin so machine noise hits every variant alike; the report
gives median and p90 latency per variant and the differences, which are what to compare.

    make bench            # or: python -m tests.bench.harness_overhead --requests 3000
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from tests.harness.support import HarnessRunner, start_upstream

VARIANTS = {"none": "/none", "demo-0": "/demo0", "demo-2": "/demo2"}


def _kong_yml(upstream_port: int) -> str:
    return f"""
    _format_version: "3.0"
    services:
      - name: echo
        url: http://127.0.0.1:{upstream_port}
        routes:
          - {{name: none, paths: [/none]}}
          - {{name: demo0, paths: [/demo0]}}
          - {{name: demo2, paths: [/demo2]}}
    plugins:
      - {{name: edge-demo, route: demo0, config: {{mode: noop}}}}
      - {{name: edge-demo, route: demo2, config: {{mode: headers}}}}
    """


def run(requests: int, warmup: int) -> dict[str, list[float]]:
    upstream, server = start_upstream()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        with HarnessRunner(_kong_yml(upstream.port), workers=1) as gateway:
            with httpx.Client(base_url=gateway.url, trust_env=False) as client:
                for i in range(warmup + requests):
                    for name, path in VARIANTS.items():
                        started = time.perf_counter()
                        response = client.get(path)
                        took = time.perf_counter() - started
                        assert response.status_code == 200, response.text
                        if i >= warmup:
                            samples[name].append(took * 1e6)
                upstream.requests.clear()
    finally:
        server.shutdown()
    return samples


def report(samples: dict[str, list[float]]) -> str:
    medians = {k: statistics.median(v) for k, v in samples.items()}
    lines = [f"{'variant':<8} {'n':>6} {'median µs':>10} {'p90 µs':>9} {'Δ vs none':>10}"]
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        lines.append(
            f"{name:<8} {len(values):>6} {medians[name]:>10.0f} {p90:>9.0f} "
            f"{medians[name] - medians['none']:>+10.0f}"
        )
    per_call = (medians["demo-2"] - medians["demo-0"]) / 2
    lines.append(
        f"HandleEvent (demo-0 - none): {medians['demo-0'] - medians['none']:.0f} µs; "
        f"per PDK call ((demo-2 - demo-0) / 2): {per_call:.0f} µs"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    print(report(run(args.requests, args.warmup)))


if __name__ == "__main__":
    main()
