"""Kong's bundled ``prometheus`` plugin: its schema, its log phase and its exporter.

Sources (Kong 3.9.3): kong/plugins/prometheus/schema.lua (the config fields, all booleans
defaulting to false), handler.lua (PRIORITY 13; the log phase picks status, sizes,
latencies and the consumer out of ``kong.log.serialize()`` by the config's switches),
exporter.lua (metric names, labels, buckets; a request without a route is not recorded;
``source`` is "service" when kong.response.get_source() says so, "kong" otherwise; the
node-wide gauges set at scrape time; with no prometheus plugin configured only those
node-wide "local" metrics are printed), prometheus.lua (the text format: ``kong_`` prefix,
keys sorted, HELP/TYPE once per metric, ``le`` without padding, ``+Inf`` last, the
``nginx_metric_errors_total`` counter every dictionary holds).

The series live in a private prometheus_client ``CollectorRegistry`` (one per gateway); they
are printed in Kong's own layout, not prometheus_client's: Kong keeps its label order and
names its bandwidth counter ``kong_bandwidth_bytes`` (no ``_total``), which
``generate_latest`` would rename.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from kong_harness import KONG_VERSION

NAME = "prometheus"
PRIORITY = 13  # handler.lua
VERSION = KONG_VERSION  # handler.lua: kong_meta.version
PHASES = ("log",)

# schema.lua, expressed in the harness's plugin-schema form (the descriptions left out; the
# shared-dict custom validator always passes with Kong's own nginx template).
CONFIG_FIELDS = (
    "per_consumer",
    "status_code_metrics",
    "ai_metrics",
    "latency_metrics",
    "bandwidth_metrics",
    "upstream_health_metrics",
)
SCHEMA: Mapping[str, Any] = {
    "name": NAME,
    "fields": [
        {
            "config": {
                "type": "record",
                "fields": [{name: {"type": "boolean", "default": False}} for name in CONFIG_FIELDS],
            }
        }
    ],
}

# exporter.lua
KONG_LATENCY_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000)
UPSTREAM_LATENCY_BUCKETS = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000)
_STATUS_LABELS = ("service", "route", "code", "source", "workspace", "consumer")
_BANDWIDTH_LABELS = ("service", "route", "direction", "workspace", "consumer")
_LATENCY_LABELS = ("service", "route", "workspace")


class _Histogram:
    def __init__(self, buckets: tuple[int, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[index] += 1
        self.total += value


class PrometheusExporter(Collector):
    """exporter.lua's state for one gateway node, readable through ``registry``."""

    def __init__(
        self,
        node_id: str,
        node_stats: Callable[[], Mapping[str, int]],
        timers: Callable[[], Mapping[str, int]],
        memory: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.node_id = node_id
        self._node_stats = node_stats
        self._timers = timers
        # kong.node.get_memory_stats() in bytes (kong_harness/node_memory.py)
        self._memory = memory or (lambda: {"workers_lua_vms": [], "lua_shared_dicts": {}})
        self.enabled = False  # exporter.lua configure(): some prometheus plugin configured
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], float] = {}
        self._bandwidth: dict[tuple[str, ...], float] = {}
        self._latency: dict[str, dict[tuple[str, ...], _Histogram]] = {
            "kong_latency_ms": {},
            "upstream_latency_ms": {},
            "request_latency_ms": {},
        }
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- handler.lua log + exporter.lua log -----------------------------------------------
    def log(self, conf: Mapping[str, Any], message: Mapping[str, Any], source: str) -> None:
        route = message.get("route")
        if not route:
            return  # exporter.lua: nothing is recorded for a request no route matched
        service = message.get("service") or {}
        service_name = service.get("name") or service.get("host") or ""
        route_name = route.get("name") or route.get("id")
        consumer = ""
        if conf.get("per_consumer") and message.get("consumer") is not None:
            consumer = message["consumer"].get("username") or ""
        workspace = message.get("workspace_name") or ""
        with self._lock:
            if conf.get("bandwidth_metrics"):
                for direction, part in (("ingress", "request"), ("egress", "response")):
                    size = (message.get(part) or {}).get("size")
                    if size and size > 0:
                        bandwidth_key = (service_name, route_name, direction, workspace, consumer)
                        self._bandwidth[bandwidth_key] = (
                            self._bandwidth.get(bandwidth_key, 0) + size
                        )
            if conf.get("status_code_metrics") and message.get("response"):
                status_key = (
                    service_name,
                    route_name,
                    str(message["response"]["status"]),
                    "service" if source == "service" else "kong",
                    workspace,
                    consumer,
                )
                self._requests[status_key] = self._requests.get(status_key, 0) + 1
            if conf.get("latency_metrics") and message.get("latencies") is not None:
                latencies = message["latencies"]
                labels = (service_name, route_name, workspace)
                for metric, field, buckets in (
                    ("request_latency_ms", "request", UPSTREAM_LATENCY_BUCKETS),
                    ("upstream_latency_ms", "proxy", UPSTREAM_LATENCY_BUCKETS),
                    ("kong_latency_ms", "kong", KONG_LATENCY_BUCKETS),
                ):
                    value = latencies.get(field)
                    if value is not None and value >= 0:
                        series = self._latency[metric]
                        series.setdefault(labels, _Histogram(buckets)).observe(value)

    # -- exporter.lua metric_data ---------------------------------------------------------
    def collect(self) -> list[Metric]:
        stats = self._node_stats()
        timers = self._timers()
        node = {"node_id": self.node_id, "subsystem": "http"}
        out = [
            _metric(
                "nginx_connections_total",
                "Number of connections by subsystem",
                "gauge",
                [
                    ({**node, "state": state}, stats[key])
                    for state, key in (
                        ("accepted", "connections_accepted"),
                        ("handled", "connections_handled"),
                        ("total", "total_requests"),
                        ("active", "connections_active"),
                        ("reading", "connections_reading"),
                        ("writing", "connections_writing"),
                        ("waiting", "connections_waiting"),
                    )
                ],
            ),
            _metric(
                "nginx_requests_total",
                "Number of requests total",
                "gauge",
                [(node, stats["total_requests"])],
            ),
            _metric(
                "nginx_timers",
                "Number of nginx timers",
                "gauge",
                [({"state": s}, timers[s]) for s in ("running", "pending")],
            ),
            # DB-less: kong.db.connector:connect() of the "off" strategy always succeeds
            _metric(
                "datastore_reachable",
                "Datastore reachable from Kong, 0 is unreachable",
                "gauge",
                [({}, 1)],
            ),
            _metric(
                "node_info",
                "Kong Node metadata information",
                "gauge",
                [({"node_id": self.node_id, "version": VERSION}, 1)],
            ),
            *self._memory_metrics(),
        ]
        if self.enabled:  # prometheus.lua metric_data(local_only = not enabled)
            with self._lock:
                out += [
                    _metric(
                        "nginx_metric_errors_total",
                        "Number of nginx-lua-prometheus errors",
                        "counter",
                        [({}, 0)],
                    ),
                    _metric(
                        "http_requests_total",
                        "HTTP status codes per consumer/service/route in Kong",
                        "counter",
                        _labelled(_STATUS_LABELS, self._requests),
                    ),
                    _metric(
                        "bandwidth_bytes",
                        "Total bandwidth (ingress/egress) throughput in bytes",
                        "counter",
                        _labelled(_BANDWIDTH_LABELS, self._bandwidth),
                    ),
                    *(
                        self._histogram(name, doc)
                        for name, doc in (
                            (
                                "kong_latency_ms",
                                "Latency added by Kong and enabled plugins for "
                                "each service/route in Kong",
                            ),
                            (
                                "upstream_latency_ms",
                                "Latency added by upstream response for each service/route in Kong",
                            ),
                            (
                                "request_latency_ms",
                                "Total latency incurred during requests for "
                                "each service/route in Kong",
                            ),
                        )
                    ),
                ]
        return [m for m in out if m.samples]

    def _memory_metrics(self) -> list[Metric]:
        """exporter.lua init() and metric_data(): the three kong_memory_* gauges (capacity
        set at init, allocated slabs and the workers' VMs at each scrape)."""
        memory = self._memory()
        dicts = memory["lua_shared_dicts"]
        node = {"node_id": self.node_id}
        return [
            _metric(
                "memory_workers_lua_vms_bytes",
                "Allocated bytes in worker Lua VM",
                "gauge",
                [
                    (
                        {**node, "pid": str(vm["pid"]), "kong_subsystem": "http"},
                        vm["http_allocated_gc"],
                    )
                    for vm in memory["workers_lua_vms"]
                ],
            ),
            _metric(
                "memory_lua_shared_dict_bytes",
                "Allocated slabs in bytes in a shared_dict",
                "gauge",
                [
                    (
                        {**node, "shared_dict": name, "kong_subsystem": "http"},
                        zone["allocated_slabs"],
                    )
                    for name, zone in dicts.items()
                ],
            ),
            _metric(
                "memory_lua_shared_dict_total_bytes",
                "Total capacity in bytes of a shared_dict",
                "gauge",
                [
                    ({**node, "shared_dict": name, "kong_subsystem": "http"}, zone["capacity"])
                    for name, zone in dicts.items()
                ],
            ),
        ]

    def _histogram(self, name: str, doc: str) -> Metric:
        metric = Metric("kong_" + name, doc, "histogram")
        for labels, hist in self._latency[name].items():
            base = dict(zip(_LATENCY_LABELS, labels, strict=True))
            cumulative = 0
            for bound, count in zip((*map(str, hist.buckets), "+Inf"), hist.counts, strict=True):
                cumulative += count
                metric.add_sample(f"kong_{name}_bucket", {**base, "le": bound}, cumulative)
            metric.add_sample(f"kong_{name}_count", base, cumulative)
            metric.add_sample(f"kong_{name}_sum", base, hist.total)
        return metric

    def render(self) -> bytes:
        """prometheus.lua metric_data: HELP and TYPE once per metric, then its samples,
        metrics and samples in the order of their sorted keys (buckets by bound)."""
        lines: list[str] = []
        for metric in sorted(self.registry.collect(), key=lambda m: m.name):
            lines.append(f"# HELP {metric.name} {metric.documentation}")
            lines.append(f"# TYPE {metric.name} {metric.type}")
            for sample in sorted(metric.samples, key=_sample_order):
                lines.append(f"{sample.name}{_labels(sample)} {_number(sample.value)}")
        return ("\n".join(lines) + "\n").encode() if lines else b""


def _metric(
    name: str, doc: str, kind: str, samples: list[tuple[Mapping[str, str], float]]
) -> Metric:
    metric = Metric("kong_" + name, doc, kind)
    for labels, value in samples:
        metric.add_sample("kong_" + name, dict(labels), value)
    return metric


def _labelled(
    names: tuple[str, ...], counts: Mapping[tuple[str, ...], float]
) -> list[tuple[Mapping[str, str], float]]:
    """Samples of a counter kept as ``{label values: count}``."""
    return [(dict(zip(names, key, strict=True)), value) for key, value in counts.items()]


def _sample_order(sample: Sample) -> tuple[str, str, float]:
    labels = {k: v for k, v in sample.labels.items() if k != "le"}
    le = sample.labels.get("le")
    return (
        sample.name,
        _labels(Sample(sample.name, labels, 0)),
        float("inf") if le == "+Inf" else float(le) if le is not None else 0.0,
    )


def _labels(sample: Sample) -> str:
    if not sample.labels:
        return ""
    escaped = (
        str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        for v in sample.labels.values()
    )
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(sample.labels, escaped, strict=True)) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
