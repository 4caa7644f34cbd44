"""Measuring plugin-server CPU per request: interleaved blocks, per-process /proc counters.

Variants run in interleaved blocks of ``block`` requests so machine noise hits them alike;
per block the CPU the variant's plugin-server process used is read from /proc:
``utime+stime`` of /proc/<pid>/stat (clock ticks, what ``ps``/``top`` show; too coarse for
one block, so it is reported over the whole run) and the nanosecond on-CPU time of
/proc/<pid>/task/*/schedstat (per block, for the median). CPU of the gateway and of the
client is not counted.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def measure(
    requests: Mapping[str, Callable[[], None]], pids: Mapping[str, int], *, blocks: int, block: int
) -> dict[str, Any]:
    """CPU per request of each variant's process: ``requests[v]()`` sends one request."""
    variants = list(requests)
    ns: dict[str, list[float]] = {v: [] for v in variants}
    ticks = dict.fromkeys(variants, 0)
    for _ in range(blocks):
        for variant in variants:
            pid = pids[variant]
            t0, n0 = cpu_ticks(pid), cpu_ns(pid)
            for _ in range(block):
                requests[variant]()
            ticks[variant] += cpu_ticks(pid) - t0
            ns[variant].append((cpu_ns(pid) - n0) / block / 1000)
    total = blocks * block
    return {
        "variants": variants,
        "median_us": {v: statistics.median(ns[v]) for v in variants},
        "p90_us": {
            v: statistics.quantiles(ns[v], n=10)[-1] if len(ns[v]) > 1 else ns[v][0]
            for v in variants
        },
        "stat_us": {v: ticks[v] / CLK_TCK * 1e6 / total for v in variants},
        "requests": total,
    }


def report(result: Mapping[str, Any], null_note: str) -> str:
    med, p90, stat = result["median_us"], result["p90_us"], result["stat_us"]
    lines = [
        f"plugin-server CPU per request, {result['requests']} requests per variant",
        f"{'variant':<10} {'median µs':>10} {'p90 µs':>9} {'stat µs':>9} "
        f"{'x null':>7} {'Δ null µs':>10}",
    ]
    for v in result["variants"]:
        lines.append(
            f"{v:<10} {med[v]:>10.0f} {p90[v]:>9.0f} {stat[v]:>9.0f} "
            f"{med[v] / med['null']:>7.2f} {med[v] - med['null']:>+10.0f}"
        )
    lines.append(
        "median/p90: schedstat per block; stat: utime+stime over the whole run "
        f"({1000 / CLK_TCK:.0f} ms ticks). {null_note}"
    )
    return "\n".join(lines)
