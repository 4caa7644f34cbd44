"""Helpers of the observability tests: where the files are, the Prometheus tools, PromQL.

``promtool``/``amtool`` come from the Debian packages ``prometheus`` and
``prometheus-alertmanager`` (``.ci/run`` installs them in CI). A missing tool skips its tests
locally and fails them in CI (``tests.support.services.require``).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "observability"
PROMETHEUS = OBS / "prometheus"
ALERTMANAGER = OBS / "alertmanager"
GRAFANA = OBS / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

# Where the metrics are defined (prometheus_client in the plugin servers and the backend;
# Kong's exporter emulation in the harness).
CODE_DIRS = (ROOT / "kong-plugins" / "src", ROOT / "backend" / "src")
KONG_EXPORTER = ROOT / "kong" / "harness" / "src" / "kong_harness" / "prometheus.py"
# Series Prometheus itself adds to every target.
SYNTHETIC = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)


# Series other software exports, which the rules and panels may select; the live test
# (test_live_stack.py) checks each one is really there. prometheus_client's process collector
# in the plugin servers; Prometheus and Alertmanager about themselves.
FOREIGN = frozenset(
    {
        "process_start_time_seconds",
        "prometheus_rule_evaluation_failures_total",
        "prometheus_notifications_errors_total",
        "prometheus_notifications_alertmanagers_discovered",
        "prometheus_config_last_reload_successful",
        "alertmanager_config_last_reload_successful",
        "alertmanager_notifications_failed_total",
        "alertmanager_notifications_total",
        "alertmanager_alerts",
    }
)


def tool(name: str) -> str:
    """The path of ``name``, or skip (locally) / fail (CI) with a one-line reason."""
    path = shutil.which(name)
    require(
        None
        if path
        else f"{name} not found on PATH (sudo apt-get install prometheus prometheus-alertmanager)"
    )
    assert path is not None
    return path


def run(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- metric names the code defines --------------------------------------------------------

_PROM_CLIENT_KINDS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "gauge",
}
_FAMILY_KINDS = {
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
    "SummaryMetricFamily": "summary",
}
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def series_names(name: str, kind: str, *, prometheus_client: bool = True) -> set[str]:
    """The sample names a metric family exposes (prometheus_client's suffix rules; Kong's
    exporter prints its names as given)."""
    if kind == "counter":
        if not prometheus_client:
            return {name}
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"} | (
            {f"{name}_created"} if prometheus_client else set()
        )
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def _python_definitions(path: Path) -> set[str]:
    source = path.read_text()
    if "prometheus_client" not in source:
        return set()
    tree = ast.parse(source)
    names: set[str] = set()
    family_kinds = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        callee = _callee(node)
        first = _str(node.args[0])
        if callee in _PROM_CLIENT_KINDS and first:
            names |= series_names(first, _PROM_CLIENT_KINDS[callee])
        elif callee in _FAMILY_KINDS:
            if first:
                names |= series_names(first, _FAMILY_KINDS[callee])
            else:
                family_kinds.add(_FAMILY_KINDS[callee])
    if family_kinds:
        # Families built from a table of (name, documentation, ...) tuples, as
        # auth_backend.core.metrics.DatabaseGaugeCollector does.
        kind = family_kinds.pop() if len(family_kinds) == 1 else "untyped"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Tuple)
                and len(node.elts) >= 2
                and (name := _str(node.elts[0]))
                and _NAME.match(name)
                and _str(node.elts[1])
                and " " in (_str(node.elts[1]) or "")
            ):
                names |= (
                    series_names(name, kind)
                    if kind != "untyped"
                    else {name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                )
    return names


def _kong_exporter_definitions(path: Path) -> set[str]:
    """kong_harness/prometheus.py: ``_metric("name", doc, "kind", ...)`` and the histograms
    keyed in ``self._latency``; exporter.lua prefixes every name with ``kong_``."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node) == "_metric" and len(node.args) >= 3:
            name, kind = _str(node.args[0]), _str(node.args[2])
            if name and kind:
                names |= series_names("kong_" + name, kind, prometheus_client=False)
        target = value = None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        if (
            isinstance(target, ast.Attribute)
            and target.attr == "_latency"
            and isinstance(value, ast.Dict)
        ):
            for key in value.keys:
                if key is not None and (name := _str(key)):
                    names |= series_names("kong_" + name, "histogram", prometheus_client=False)
    return names


def recorded_metric_names() -> set[str]:
    """The series the recording rules of RULE_FILES write (``slo:*``)."""
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def defined_metric_names() -> set[str]:
    """Every series a rule or a panel may select: what the code exports, what Prometheus adds
    to every target, what other software exports (FOREIGN), what the recording rules write."""
    names: set[str] = set(SYNTHETIC) | FOREIGN | recorded_metric_names()
    for directory in CODE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            names |= _python_definitions(path)
    return names | _kong_exporter_definitions(KONG_EXPORTER)


# --- PromQL -------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "start",
        "end",
    }
)
_GRAFANA_INTERVALS = re.compile(
    r"\$(?:__rate_interval|__interval|__range)\b|"
    r"\$\{(?:__rate_interval|__interval|__range)\}"
)
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")


def grafana_to_promql(expr: str) -> str:
    """A panel expression with Grafana's variables replaced, for promtool to parse."""
    return _GRAFANA_VARIABLE.sub(".*", _GRAFANA_INTERVALS.sub("5m", expr))


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are not functions,
    keywords, label names or parts of numbers and durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    # {…} matchers may hold the metric name itself: {__name__="x"}
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        token = match.group(0)
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # 1e3, 5m
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names
