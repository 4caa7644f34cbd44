"""``kong.node.get_memory_stats()`` as the harness can answer it, for the Status API's
``/status`` and the prometheus exporter's ``kong_memory_*`` gauges.

Sources (Kong 3.9.3): kong/pdk/node.lua (``workers_lua_vms``: each worker's pid and
``http_allocated_gc``; ``lua_shared_dicts``: per dictionary its ``capacity`` and
``allocated_slabs`` = capacity minus the zone's free space), kong/templates/nginx_kong.lua
(the dictionaries Kong declares and their sizes, ``mem_cache_size`` for the two DB caches;
``kong_dns_cache`` only with ``new_dns_client``, off by default), kong/conf_loader/init.lua
(``prometheus_metrics 5m`` added when the prometheus plugin is loaded).

What the harness has instead: one Python process stands for the workers' Lua VMs (its
resident memory); it keeps nothing in nginx shared dictionaries, so each declared dictionary
reports its capacity with nothing allocated.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import Any

# nginx_kong.lua: name -> size, or the kong.conf property that sizes it
_TEMPLATE_DICTS = (
    ("kong", "5m"),
    ("kong_locks", "8m"),
    ("kong_healthchecks", "5m"),
    ("kong_cluster_events", "5m"),
    ("kong_rate_limiting_counters", "12m"),
    ("kong_core_db_cache", "mem_cache_size"),
    ("kong_core_db_cache_miss", "12m"),
    ("kong_db_cache", "mem_cache_size"),
    ("kong_db_cache_miss", "12m"),
    ("kong_secrets", "5m"),
)
_DEFAULTS = {"mem_cache_size": "128m", "resolver_mem_cache_size": "5m"}  # kong_defaults.lua


def _nginx_size(value: str) -> int:
    value = value.strip().lower()
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}
    if value and value[-1] in units:
        return int(value[:-1]) * units[value[-1]]
    return int(value)


def shared_dict_capacities(conf: Mapping[str, str], prometheus: bool) -> dict[str, int]:
    """The ``lua_shared_dict`` zones Kong's template declares for ``conf``, in bytes."""

    def size(spec: str) -> int:
        return _nginx_size(conf.get(spec, _DEFAULTS[spec]) if spec in _DEFAULTS else spec)

    dicts = {name: size(spec) for name, spec in _TEMPLATE_DICTS}
    if conf.get("new_dns_client", "off").strip().lower() in ("on", "true"):
        dicts["kong_dns_cache"] = size("resolver_mem_cache_size")
    if prometheus:
        dicts["prometheus_metrics"] = _nginx_size("5m")
    return dicts


def resident_bytes() -> int:
    """This process's resident memory (what stands for the workers' Lua VMs)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_stats(conf: Mapping[str, str], prometheus: bool) -> dict[str, Any]:
    """node.lua get_memory_stats() with raw byte counts."""
    return {
        "workers_lua_vms": [{"http_allocated_gc": resident_bytes(), "pid": os.getpid()}],
        "lua_shared_dicts": {
            name: {"capacity": capacity, "allocated_slabs": 0}
            for name, capacity in shared_dict_capacities(conf, prometheus).items()
        },
    }
