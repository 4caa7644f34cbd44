"""``make bench``: every benchmark in one run, one table, the figures as JSON.

    python -m tests.bench              # the defaults below, a few minutes on 2 cores
    python -m tests.bench --help       # every parameter

Sections (each module's docstring says how it measures):
  tests/bench/bridge.py      the bridges alone: CPU per null event and per PDK call, ours
                             vs kong-pdk's (gevent, threads); five events that wait first
  tests/bench/chain.py       per plugin and the whole chain beside the floor (null plugins)
                             and typical kong-pdk plugins; edge-jwt miss vs hit; JWKS
                             refetches under an unknown-kid flood; the 50k-request soak
  tests/bench/rate_limit.py  decisions/s and µs/decision, local and Redis; over-admission
                             with 2 nodes
  tests/bench/end_to_end.py  profile GET through the gateway vs straight to the backend
The table is printed as Markdown (bench/README.md keeps a paste of one); the
figures go to bench/results/<UTC timestamp>.json and bench/results/latest.json.
Ratios are measured side by side in one run: absolute figures depend on the machine and on
what else runs on it (the load average is recorded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from tests.bench import bridge, chain, end_to_end, rate_limit
from tests.bench.measure import pin_to_one_cpu
from tests.support.harness import REPO

RESULTS = REPO / "bench" / "results"
MIB = 2**20
BLANK = ("", "", "", "")  # the comparison columns of a row that has none


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--bridge-blocks", type=int, default=9, help="blocks per bridge (fresh processes)")
    add("--bridge-events", type=int, default=500, help="events per bridge block")
    add("--blocks", type=int, default=10, help="interleaved blocks per plugin variant")
    add("--block", type=int, default=100, help="requests per block")
    add("--warmup", type=int, default=20, help="untimed requests per variant first")
    add("--flood-seconds", type=float, default=5.0, help="unknown-kid flood duration")
    add("--flood-clients", type=int, default=4)
    add("--soak-requests", type=int, default=50_000, help="requests through the chain")
    add("--soak-clients", type=int, default=8, help="concurrent soak requests")
    add("--rl-blocks", type=int, default=10, help="rate-limit decision blocks")
    add("--rl-block", type=int, default=300, help="decisions per block and variant")
    add("--rl-keys", type=int, default=10_000, help="keys of the 'many keys' rows")
    add("--rl-limit", type=int, default=100, help="per second, decision-cost rows")
    add("--two-node-limit", type=int, default=1000, help="per minute, over-admission rows")
    add("--e2e-clients", type=int, default=4)
    add("--e2e-seconds", type=float, default=5.0, help="per round and way")
    add("--e2e-rounds", type=int, default=2)
    add(
        "--one-cpu",
        action="store_true",
        help="run the bench and every process it starts on one CPU: no cross-CPU wake-ups",
    )
    add("--quick", action="store_true", help="a smoke run: every section, tiny counts")
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.block, args.warmup = 2, 20, 2
        args.bridge_blocks, args.bridge_events = 2, 100
        args.flood_seconds, args.soak_requests = 2.0, 500
        args.rl_blocks, args.rl_block, args.rl_keys = 2, 100, 100
        args.two_node_limit, args.e2e_seconds, args.e2e_rounds = 100, 1.0, 1
    return args


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _plugin_rows(variants: dict[str, dict[str, float]]) -> list[list[str]]:
    none = variants["none"]

    def cells(name: str) -> dict[str, str]:
        v = variants[name]
        return {
            "pdk": f"{v['pdk_per_request']:.1f}",
            "cpu": f"{v['cpu_us_per_request']:.0f} (min {v['cpu_us_min']:.0f})",
            "lat": f"{_ms(v['p50_us'] - none['p50_us'])} / {_ms(v['p99_us'] - none['p99_us'])}",
        }

    rows = []
    groups = [
        ("edge-trace", "edge-trace", "null x1", "typical-trace", "typical null x1"),
        ("edge-jwt (cache hit)", "edge-jwt hit", "null x1", "typical-jwt", "typical null x1"),
        ("edge-jwt (cache miss)", "edge-jwt miss", "null x1", "typical-jwt", "typical null x1"),
        (
            "edge-rate-limit (Redis)",
            "edge-rate-limit",
            "null x1",
            "typical-rate-limit",
            "typical null x1",
        ),
        ("**whole chain**", "edge chain", "null x3", "typical chain", "typical null x3"),
    ]
    groups = [(*group, f"{group[3]}-gevent") for group in groups]  # kong-pdk gevent mode
    labels = {
        "pdk": "PDK round trips / request",
        "cpu": "plugin-server CPU µs / request",
        "lat": "added latency p50 / p99 ms",
    }
    for title, *names in groups:
        found = [cells(name) for name in names]
        for key, label in labels.items():
            rows.append([f"{title}: {label}", *(c[key] for c in found)])
    return rows


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "n/a"


def _bridge_rows(br: dict[str, Any], variants: dict[str, dict[str, float]]) -> list[list[str]]:
    ours, gevent, threads = br["ours"], br["kong-pdk gevent"], br["kong-pdk threads"]
    rows = []
    for key, label in (("null_event_us", "per null event"), ("pdk_call_us", "per PDK call")):
        rows.append(
            [
                f"bridge CPU µs {label}: ours; kong-pdk gevent; kong-pdk threads (median, min)",
                f"{ours[key]:.0f} (min {ours[key + '_min']:.0f}); "
                f"{gevent[key]:.0f} (min {gevent[key + '_min']:.0f}); "
                f"{threads[key]:.0f} (min {threads[key + '_min']:.0f}) — ours "
                f"{_ratio(ours[key], gevent[key])} kong-pdk gevent",
                *BLANK,
            ]
        )
    rows.append(
        [
            "5 events waiting 0.2 s before their first PDK call, s: ours; kong-pdk gevent; "
            "kong-pdk threads",
            "; ".join(f"{b['concurrent_wait_seconds']:.2f}" for b in (ours, gevent, threads)),
            *BLANK,
        ]
    )
    spread = br["processes"]
    rows.append(
        [
            f"a chain's {spread['plugins']} events ({spread['calls_per_event']} PDK calls each), "
            f"{spread['request_gap_seconds'] * 1000:.0f} ms between requests, CPU µs / request "
            "on our bridge: three processes (as deployed) vs one process serving the three",
            f"{spread['three_processes_us']:.0f} (min {spread['three_processes_us_min']:.0f}) "
            f"vs {spread['one_process_us']:.0f} (min {spread['one_process_us_min']:.0f}) — one "
            f"process {_ratio(spread['one_process_us'], spread['three_processes_us'])} three",
            *BLANK,
        ]
    )
    now = variants["edge chain"]["cpu_us_per_request"]
    before = variants["edge chain before"]["cpu_us_per_request"]
    typical = variants["typical chain"]["cpu_us_per_request"]
    rows.append(
        [
            "whole chain CPU µs / request: now (3 events) vs before (kong-pdk bridge, "
            "edge-trace log phase: 4 events); vs typical kong-pdk (threads)",
            f"{now:.0f} vs {before:.0f} ({_ratio(now, before)}); vs {typical:.0f} "
            f"({_ratio(now, typical)})",
            *BLANK,
        ]
    )
    floor = variants["runtime floor"]["cpu_us_per_request"]
    floor_before = variants["runtime floor before"]["cpu_us_per_request"]
    rows.append(
        [
            "runtime floor: the chain's PDK calls with no plugin logic "
            "(tests/bench/plugins/chain_probe.py), CPU µs / request: our bridge (3 events) vs "
            "kong-pdk's (4 events); the plugins' own Python (whole chain less its floor): "
            "now; before",
            f"{floor:.0f} vs {floor_before:.0f} ({_ratio(floor, floor_before)}); "
            f"{now - floor:.0f}; {before - floor_before:.0f}",
            *BLANK,
        ]
    )
    own = [
        plugin - probe
        for plugin, probe in zip(
            variants["edge chain"]["cpu_us_by_process"],
            variants["runtime floor"]["cpu_us_by_process"],
            strict=True,
        )
    ]
    rows.append(
        [
            "the plugins' own Python in the chain, per plugin: its server's CPU µs / request "
            "less its probe's (the same events and PDK calls, no logic)",
            "; ".join(f"{name} {us:.0f}" for name, us in zip(chain.OURS, own, strict=True)),
            *BLANK,
        ]
    )
    one = variants["edge chain, one process"]["cpu_us_per_request"]
    rows.append(
        [
            "whole chain CPU µs / request served by one process (bench only, "
            "tests/bench/plugins/one_process.py): vs three processes; vs before; vs typical "
            "kong-pdk (threads)",
            f"{one:.0f}: vs {now:.0f} ({_ratio(one, now)}); vs {before:.0f} "
            f"({_ratio(one, before)}); vs {typical:.0f} ({_ratio(one, typical)})",
            *BLANK,
        ]
    )
    return rows


def table(result: dict[str, Any]) -> str:
    ch, rl, e2e = result["chain"], result["rate_limit"], result["end_to_end"]
    rows = _bridge_rows(result["bridge"], ch["variants"])
    rows += _plugin_rows(ch["variants"])
    hit, miss = ch["variants"]["edge-jwt hit"], ch["variants"]["edge-jwt miss"]
    rows.append(
        [
            "edge-jwt miss vs hit: CPU µs / request",
            f"{miss['cpu_us_per_request']:.0f} vs {hit['cpu_us_per_request']:.0f}",
            *BLANK,
        ]
    )
    flood = ch["jwks_flood"]
    rows.append(
        [
            f"JWKS refetches / s, unknown-kid flood ({flood['requests'] / flood['seconds']:.0f} "
            f"req/s for {flood['seconds']:.0f} s)",
            f"{flood['refetches_per_second']:.2f} (cap {flood['cap_per_second']:.0f})",
            *BLANK,
        ]
    )
    by = {(r["store"], r["algorithm"], r["keys"]): r for r in rl["decisions"]}
    for store in ("local", "redis"):
        for algorithm in ("sliding_window", "gcra"):
            one, many = by[(store, algorithm, "one")], by[(store, algorithm, "many")]
            rows.append(
                [
                    f"rate limiter {store} {algorithm}: µs / decision (decisions / s), "
                    "one key; many keys",
                    f"{one['median_us']:.1f} ({one['decisions_per_second']:,.0f}); "
                    f"{many['median_us']:.1f} ({many['decisions_per_second']:,.0f})",
                    *BLANK,
                ]
            )
    two = rl["two_nodes"]
    rows.append(
        [
            f"over-admission, 2 nodes, limit {two['limit']}/min on one key",
            f"Redis {two['redis']['over_admitted']}; local fallback (limit ÷ 2) "
            f"{two['local-fallback']['over_admitted']}",
            *BLANK,
        ]
    )
    gw, direct = e2e["gateway"], e2e["direct"]
    rows.append(
        [
            "profile GET req/s: through the gateway vs straight to the backend",
            f"{gw['requests_per_second']:.0f} vs {direct['requests_per_second']:.0f} "
            f"(ratio {e2e['ratio']:.2f})",
            *BLANK,
        ]
    )
    soak = ch["soak"]
    for name in chain.OURS:
        points = [soak[at][name] for at in ("before", "halfway", "after")]
        rows.append(
            [
                f"soak {soak['requests']:,} chain requests, {name}: RSS MiB, greenlets "
                "(before → halfway → after)",
                " → ".join(f"{p['rss_bytes'] / MIB:.1f}" for p in points)
                + ", "
                + " → ".join(str(p["greenlets"]) for p in points),
                *BLANK,
            ]
        )
    header = [
        "measure",
        "edge plugins",
        "null floor (gevent)",
        "typical kong-pdk (threads, its default)",
        "typical floor (threads)",
        "typical kong-pdk (gevent)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    args = _arguments()
    if args.one_cpu:  # first: every thread and process started later inherits it
        pin_to_one_cpu()
    started = datetime.datetime.now(datetime.UTC)
    parameters = {k: v for k, v in vars(args).items() if k != "quick"}
    machine = {
        "cpus": os.cpu_count(),
        "cpus_used": sorted(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(f"make bench {started:%Y-%m-%d %H:%M} UTC, {machine}")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()), flush=True)
    clock = time.monotonic()
    result: dict[str, Any] = {"started": started.isoformat(), "machine": machine}
    result["parameters"] = parameters
    print("bridges: null events, PDK calls, waiting events …", flush=True)
    result["bridge"] = bridge.run(args.bridge_blocks, args.bridge_events, warmup=50)
    _save(result, started)
    print("chain: plugins, floor, typical; JWKS flood; soak …", flush=True)
    result["chain"] = chain.run(
        chain.ChainSettings(
            blocks=args.blocks,
            block=args.block,
            warmup=args.warmup,
            flood_seconds=args.flood_seconds,
            flood_clients=args.flood_clients,
            soak_requests=args.soak_requests,
            soak_clients=args.soak_clients,
        )
    )
    _save(result, started)
    print("rate limiter …", flush=True)
    result["rate_limit"] = {
        "decisions": rate_limit.decision_costs(
            args.rl_blocks, args.rl_block, args.rl_keys, args.rl_limit
        ),
        "two_nodes": rate_limit.over_admission(args.two_node_limit),
    }
    _save(result, started)
    print("end to end: backend, gateway …", flush=True)
    result["end_to_end"] = end_to_end.run(args.e2e_clients, args.e2e_seconds, args.e2e_rounds)
    result["seconds"] = time.monotonic() - clock
    result["table"] = table(result)
    print()
    print(result["table"])
    print(
        f"\n{result['seconds']:.0f} s. null floor: the harness's edge-demo plugin in noop mode "
        "(gevent, no PDK call), one per plugin (x3 for the chain); typical: "
        "tests/bench/plugins/ (kong-pdk's default threads mode), its floor typical_null.py. "
        "Added latency: over the same request to a route without plugins."
    )
    stamped = _save(result, started)
    (RESULTS / "latest.json").write_text(stamped.read_text())
    print(f"figures: {stamped.relative_to(REPO)} (and bench/results/latest.json)")


def _save(result: dict[str, Any], started: datetime.datetime) -> Path:
    """Write what the run has so far to its timestamped file (after every section, so a
    section that fails late leaves the earlier figures; latest.json only when complete)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamped = RESULTS / f"{started:%Y%m%dT%H%M%SZ}.json"
    stamped.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return stamped


if __name__ == "__main__":
    main()
