"""What ``make bench`` measures per request, and how.

* **Plugin-server CPU**: the process CPU clock of each of the variant's plugin-server
  processes (``clock_getcpuclockid(pid)``, read in nanoseconds), summed around each block of
  requests; the gateway's and the client's CPU is not counted. The process clock counts
  every thread the process ever ran, those that have exited included: kong-pdk's threads
  mode runs each event in a thread that then ends, so a sum over the *live* threads
  (/proc/<pid>/task/*/schedstat) loses its work. Where the clock cannot be read,
  ``utime+stime`` of /proc/<pid>/stat (the same total, in clock ticks) stands in.
* **PDK round trips**: counted where the harness answers them (``kong_harness.pdk.call``,
  looked up by the RPC bridge on every step), so a plugin cannot hide one.
* **Latency**: the client's wall time per request; variants run in interleaved blocks so
  machine noise hits them alike.
* **Footprint**: resident memory from /proc/<pid>/status and the plugin's
  ``edge_plugin_greenlets`` gauge from its metrics endpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.harness import HarnessRunner

_LIBC = ctypes.CDLL(None, use_errno=True)
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of process ``pid``: all its threads, exited ones included.

    The process CPU clock (POSIX ``clock_getcpuclockid``; on Linux the thread group's
    ``sum_exec_runtime`` plus what its dead threads left in it); ``utime+stime`` of
    /proc/<pid>/stat (fields 14 and 15, same total in clock ticks) where it cannot be read.
    """
    clock = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) == 0:
        try:
            return time.clock_gettime_ns(clock.value)
        except OSError:  # the process ended between the two calls: fall through
            pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_NS  # utime, stime (after pid, comm)


def pin_to_one_cpu() -> int:
    """Run the calling thread, and every thread and process it starts from now on, on one
    CPU (the lowest it may use now); answers that CPU.

    What it removes from the figures: a message that wakes a process sleeping on another
    CPU costs both a cross-CPU wake-up, which on a virtual machine is an interrupt through
    the hypervisor (tens of µs on the development machine, bench/README.md), the same for
    every runtime and every message. On one CPU each message is a plain context switch.
    """
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # 0: the calling thread; new threads and children inherit
    return cpu


def server_pid(gateway: HarnessRunner, name: str) -> int:
    """The process id of the gateway's plugin server ``name`` (started, so it has one)."""
    pid = gateway.gateway.processes[name].pid
    if pid is None:
        raise RuntimeError(f"plugin server {name} is not running")
    return pid


def rss_bytes(pid: int) -> int:
    """Resident set size of the process (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def greenlets(metrics_url: str) -> int:
    """The ``edge_plugin_greenlets`` gauge a plugin server's metrics endpoint serves."""
    text = httpx.get(metrics_url, timeout=10, trust_env=False).raise_for_status().text
    for line in text.splitlines():
        if line.startswith("edge_plugin_greenlets "):
            return int(float(line.split()[1]))
    raise ValueError(f"no edge_plugin_greenlets at {metrics_url}")


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class PdkCounter:
    """Counts the PDK calls the harness answers while installed (a context manager)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[PdkCounter]:
        from kong_harness import pdk

        real_call = pdk.call

        def counting(ctx: Any, method: str, args: Any) -> Any:
            with self._lock:
                self.calls += 1
            return real_call(ctx, method, args)

        pdk.call = counting
        try:
            yield self
        finally:
            pdk.call = real_call


@dataclass
class Variant:
    """One way of sending a request, and the plugin-server processes it exercises."""

    name: str
    send: Callable[[], None]
    pids: tuple[int, ...]
    cpu_us: list[float] = field(default_factory=list)  # per request, one value per block
    # per request and process (in ``pids`` order), one list per block
    cpu_us_by_process: list[list[float]] = field(default_factory=list)
    latency_us: list[float] = field(default_factory=list)  # per request
    pdk_calls: int = 0

    def summary(self) -> dict[str, float]:
        n = len(self.latency_us)
        return {
            "requests": n,
            "pdk_per_request": self.pdk_calls / n,
            "cpu_us_per_request": statistics.median(self.cpu_us) if self.cpu_us else 0.0,
            "cpu_us_min": min(self.cpu_us) if self.cpu_us else 0.0,
            "cpu_us_by_process": [
                statistics.median(process) for process in zip(*self.cpu_us_by_process, strict=True)
            ],
            "p50_us": percentile(self.latency_us, 50),
            "p99_us": percentile(self.latency_us, 99),
        }


def measure(
    variants: Iterable[Variant], counter: PdkCounter, *, blocks: int, block: int
) -> dict[str, dict[str, float]]:
    """Interleaved blocks of ``block`` requests per variant; per variant the median CPU
    per request over blocks (all its processes, and each one), PDK calls per request,
    latency p50/p99."""
    found = list(variants)
    clock = time.perf_counter_ns
    for _ in range(blocks):
        for variant in found:
            cpu0, calls0 = [cpu_ns(p) for p in variant.pids], counter.calls
            for _ in range(block):
                started = clock()
                variant.send()
                variant.latency_us.append((clock() - started) / 1000)
            variant.pdk_calls += counter.calls - calls0
            if variant.pids:
                used = [
                    (cpu_ns(p) - before) / block / 1000
                    for p, before in zip(variant.pids, cpu0, strict=True)
                ]
                variant.cpu_us.append(sum(used))
                variant.cpu_us_by_process.append(used)
    return {v.name: v.summary() for v in found}


def footprint(processes: Mapping[str, tuple[int, str]]) -> dict[str, dict[str, int]]:
    """RSS and live greenlets of each plugin server: ``{name: (pid, metrics_url)}``."""
    return {
        name: {"rss_bytes": rss_bytes(pid), "greenlets": greenlets(url)}
        for name, (pid, url) in processes.items()
    }
