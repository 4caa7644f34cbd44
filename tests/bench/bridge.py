"""The bridges alone: plugin-server CPU per event and per PDK call, and concurrency.

Kong's side is played by a minimal client (tests/support/kong_client.py: the messages of
kong/runloop/plugin_servers/rpc/mp_rpc.lua, no gateway), so what is measured is the
server: its process CPU clock (tests/bench/measure.py ``cpu_ns``) around a block of
events. Each block runs on a fresh server process, after a few untimed events; the figure
is the median of the blocks, with their min. Bridges: edge_plugins.pdk_bridge (ours),
kong-pdk's in gevent mode (``--kong-pdk-bridge``), kong-pdk's in its default threads mode.

* per null event: an event whose handler makes no PDK call;
* per PDK call: (an event making ``CALLS`` calls, less a null event) / ``CALLS``;
* concurrency: five events, each waiting 0.2 s before its first PDK call, sent at once on
  five connections: the wall time until all five are over (kong-pdk's server-wide lock
  from HandleEvent to the first PDK call makes it five times the wait).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from tests.bench.measure import cpu_ns
from tests.support.kong_client import Event, plugin_server, start_instance

PROBE = Path(__file__).resolve().parent / "plugins" / "bridge_probe.py"
BRIDGES = {
    "ours": ["--no-lua-style"],
    "kong-pdk gevent": ["-g", "--no-lua-style", "--kong-pdk-bridge"],
    "kong-pdk threads": ["--no-lua-style", "--kong-pdk-threads"],
}
CALLS = 10
WAIT = 0.2
CONCURRENT = 5
PLUGINS = 3  # the chain: edge-trace, edge-jwt, edge-rate-limit
CHAIN_CALLS = 3  # PDK calls per plugin event: about the chain's 10 over its 3 events
REQUEST_GAP = 0.005  # seconds between requests: each process idles between its events


def _answer(method: str, args: list[Any]) -> tuple[Any, None]:
    return "value", None


def _block(flags: list[str], calls: int, events: int, warmup: int) -> float:
    """CPU µs per event of ``events`` events making ``calls`` calls, on a fresh server."""
    with plugin_server(flags, PROBE) as server:
        conn = server.connect()
        iid = start_instance(conn, "bridge-probe", {"calls": calls})
        for _ in range(warmup):
            Event(conn, iid, "access", _answer).run()
        before = cpu_ns(server.process.pid)
        for _ in range(events):
            Event(conn, iid, "access", _answer).run()
        return (cpu_ns(server.process.pid) - before) / events / 1000


def _concurrency(flags: list[str]) -> float:
    """Seconds until ``CONCURRENT`` events waiting ``WAIT`` before their first call end."""
    with plugin_server(flags, PROBE) as server:
        conns = [server.connect() for _ in range(CONCURRENT)]
        ids = [start_instance(c, "bridge-probe", {"calls": 1, "wait": WAIT}) for c in conns]
        started = time.monotonic()
        threads = [
            threading.Thread(target=Event(c, i, "access", _answer).run)
            for c, i in zip(conns, ids, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started


def _chain_block(processes: int, requests: int, warmup: int) -> float:
    """CPU µs per request of ``PLUGINS`` events (``CHAIN_CALLS`` calls each) a request,
    ``REQUEST_GAP`` apart, on ``processes`` fresh servers of our bridge (the events spread
    over them in turn)."""
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(plugin_server(BRIDGES["ours"], PROBE)) for _ in range(processes)
        ]
        targets = []
        for index in range(PLUGINS):
            conn = servers[index % processes].connect()
            targets.append((conn, start_instance(conn, "bridge-probe", {"calls": CHAIN_CALLS})))

        def request() -> None:
            for conn, iid in targets:
                Event(conn, iid, "access", _answer).run()

        for _ in range(warmup):
            request()
        pids = [server.process.pid for server in servers]
        before = sum(cpu_ns(pid) for pid in pids)
        for _ in range(requests):
            request()
            time.sleep(REQUEST_GAP)
        return (sum(cpu_ns(pid) for pid in pids) - before) / requests / 1000


def processes_vs_one(blocks: int, requests: int, warmup: int) -> dict[str, Any]:
    """The chain's events in ``PLUGINS`` processes vs one, interleaved blocks."""
    spread: list[float] = []
    one: list[float] = []
    for _ in range(blocks):
        spread.append(_chain_block(PLUGINS, requests, warmup))
        one.append(_chain_block(1, requests, warmup))
    return {
        "plugins": PLUGINS,
        "calls_per_event": CHAIN_CALLS,
        "request_gap_seconds": REQUEST_GAP,
        "requests_per_block": requests,
        "three_processes_us": statistics.median(spread),
        "three_processes_us_min": min(spread),
        "one_process_us": statistics.median(one),
        "one_process_us_min": min(one),
    }


def run(blocks: int, events: int, warmup: int) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {
        name: {"null": [], "calls": []} for name in BRIDGES
    }
    for _ in range(blocks):  # interleaved: machine noise hits every bridge alike
        for name, flags in BRIDGES.items():
            samples[name]["null"].append(_block(flags, 0, events, warmup))
            samples[name]["calls"].append(_block(flags, CALLS, events, warmup))
    result: dict[str, Any] = {"calls_per_event": CALLS, "events_per_block": events}
    for name, flags in BRIDGES.items():
        null, calls = samples[name]["null"], samples[name]["calls"]
        per_call = [(c - n) / CALLS for c, n in zip(calls, null, strict=True)]
        result[name] = {
            "null_event_us": statistics.median(null),
            "null_event_us_min": min(null),
            "pdk_call_us": statistics.median(per_call),
            "pdk_call_us_min": min(per_call),
            "concurrent_wait_seconds": _concurrency(flags),
        }
    result["processes"] = processes_vs_one(blocks, max(1, events // 2), warmup)
    return result
