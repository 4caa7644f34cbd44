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
    return result
