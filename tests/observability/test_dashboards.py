"""Grafana provisioning and dashboards: valid JSON, provisioned datasource uids, PromQL that
parses (promtool) and selects only metrics our code defines, latency panels linked to Jaeger."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.observability.support import (
    DASHBOARDS,
    GRAFANA,
    defined_metric_names,
    grafana_to_promql,
    metric_names,
    run,
    tool,
)

EXPECTED = {"auth-service.json", "edge.json"}


def _datasources() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml")):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            out[ds["uid"]] = ds["type"]
    return out


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target of every dashboard."""
    return [
        (f"{path.name}: {panel['title']} {target['refId']}", target["expr"])
        for path in DASHBOARDS
        for panel in _panels(_load(path))
        for target in panel["targets"]
    ]


def test_dashboards_are_valid_json_with_unique_uids() -> None:
    assert {p.name for p in DASHBOARDS} >= EXPECTED
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
    for path in DASHBOARDS:
        ids = [p["id"] for p in _load(path)["panels"]]
        assert len(ids) == len(set(ids)), path.name


def test_provisioning_has_prometheus_and_jaeger_and_loads_the_folder() -> None:
    assert {"prometheus": "prometheus", "jaeger": "jaeger"}.items() <= _datasources().items()
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_panel_datasource_is_provisioned() -> None:
    uids = _datasources()
    for path in DASHBOARDS:
        dashboard = _load(path)
        for panel in _panels(dashboard):
            assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids, (path.name, panel["title"])
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] in uids, (path.name, variable["name"])


def test_latency_panels_link_to_jaeger() -> None:
    uids = _datasources()
    latency = [
        (path.name, panel)
        for path in DASHBOARDS
        for panel in _panels(_load(path))
        if "latency" in panel["title"].lower()
    ]
    assert len(latency) >= 5
    for name, panel in latency:
        links = panel["fieldConfig"]["defaults"].get("links", [])
        assert links, (name, panel["title"])
        for link in links:
            query = parse_qs(urlsplit(link["url"]).query)
            (pane,) = json.loads(
                query["panes"][0].replace("${__from}", "0").replace("${__to}", "0")
            ).values()
            assert urlsplit(link["url"]).path == "/explore"
            assert uids[pane["datasource"]] == "jaeger"
            assert pane["queries"][0]["service"] in {"kong-edge", "auth-backend"}


def test_latency_panels_show_exemplars_that_open_jaeger() -> None:
    """Every histogram target of a latency panel asks for exemplars, and the Prometheus
    datasource turns an exemplar's trace_id into a link to the Jaeger datasource."""
    (prometheus,) = [
        ds
        for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
        for ds in yaml.safe_load(path.read_text())["datasources"]
        if ds["type"] == "prometheus"
    ]
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "jaeger"}
    ]
    assert _datasources()["jaeger"] == "jaeger"
    histogram_targets = [
        (path.name, panel["title"], target)
        for path in DASHBOARDS
        for panel in _panels(_load(path))
        if "latency" in panel["title"].lower() or "verify" in panel["title"].lower()
        for target in panel["targets"]
        if "_bucket" in target["expr"]
    ]
    assert any("edge_jwt_verify_seconds_bucket" in t["expr"] for _, _, t in histogram_targets)
    missing = [
        (name, title) for name, title, t in histogram_targets if t.get("exemplar") is not True
    ]
    assert not missing, missing


def test_panel_and_variable_metrics_are_defined_by_our_code() -> None:
    defined = defined_metric_names()
    unknown = {where: sorted(metric_names(expr) - defined) for where, expr in _expressions()}
    assert not {k: v for k, v in unknown.items() if v}, unknown
    for path in DASHBOARDS:
        for variable in _load(path)["templating"]["list"]:
            query = variable["query"]["query"]
            selector = query.removeprefix("label_values(").rsplit(",", 1)[0]
            assert metric_names(selector) and metric_names(selector) <= defined, (
                path.name,
                variable["name"],
                selector,
            )


def test_panel_expressions_parse(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rules = [
        {"record": f"dashboard_expr_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(_expressions())
    ]
    path = tmp_path / "dashboard-expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le, route) (rate(kong_request_latency_ms_bucket{route=~"$route"}[5m]))',
            {"kong_request_latency_ms_bucket"},
        ),
        ('absent(auth_outbox_backlog{job="x"}) and on () (up == 1)', {"auth_outbox_backlog", "up"}),
        ("histogram_quantile(0.95, sum(rate(a_bucket[1m])) by (le)) > 1e3 offset 5m", {"a_bucket"}),
        ('{__name__="edge_x_total"}', {"edge_x_total"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_defined_metric_names_cover_every_source() -> None:
    defined = defined_metric_names()
    assert {
        "kong_http_requests_total",
        "kong_bandwidth_bytes",
        "kong_request_latency_ms_bucket",
        "kong_kong_latency_ms_count",
        "edge_jwt_jwks_fetches_total",
        "edge_rate_limit_breaker_state",
        "edge_trace_spans_dropped_total",
        "auth_login_total",
        "auth_http_request_duration_seconds_bucket",
        "auth_outbox_backlog",
        "auth_active_sessions",
    } <= defined
    assert "kong_bandwidth_bytes_total" not in defined  # Kong keeps its own name
    assert "auth_login_total_total" not in defined
