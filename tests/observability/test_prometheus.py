"""Prometheus and Alertmanager configuration, checked by the real promtool and amtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from kong_harness.prometheus import UPSTREAM_LATENCY_BUCKETS
from tests.observability.support import (
    ALERTMANAGER,
    DASHBOARDS,
    PROMETHEUS,
    ROOT,
    RULE_FILES,
    RULE_TESTS,
    defined_metric_names,
    metric_names,
    run,
    tool,
)

SCRAPED = {
    "kong": "kong:8100",
    "auth-backend": "backend:9100",
    "edge-trace": "kong:9101",
    "edge-jwt": "kong:9102",
    "edge-rate-limit": "kong:9103",
    "alertmanager": "alertmanager:9093",
    "prometheus": "localhost:9090",
}


def _all_rules() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _rules() -> list[dict]:
    """The alerting rules."""
    return [rule for rule in _all_rules() if "alert" in rule]


def test_promtool_check_config(tmp_path: Path) -> None:
    """With the certificates the backend job presents (from scripts/dev-certs) where the
    stack mounts them (/run/certs, outside the config directory's read-only mount), here
    under tmp_path; promtool checks that those files exist."""
    config = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, config)
    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/dev_certs.py"), "--out", str(certs)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    text = (config / "prometheus.yml").read_text()
    assert text.count("/run/certs/") == 3
    (config / "prometheus.yml").write_text(text.replace("/run/certs/", f"{certs}/"))
    result = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    assert RULE_FILES
    result = run(tool("promtool"), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    # The SLO tests replay up to 16 hours minute by minute: promtool needs a while.
    result = run(tool("promtool"), "test", "rules", *RULE_TESTS, cwd=PROMETHEUS, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    result = run(tool("amtool"), "check-config", ALERTMANAGER / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_targets_and_alerting() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {name: [target] for name, target in SCRAPED.items()}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    assert config["rule_files"] == ["rules/*.yml"]


def test_alertmanager_routes_everything_to_a_working_receiver() -> None:
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    assert config["route"]["group_by"] == ["alertname"]
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]}
    # The Watchdog has a receiver of its own (a dead man's switch, never people).
    assert urls == {
        "alert-sink": "http://alert-sink:8080/",
        "watchdog": "http://alert-sink:8080/watchdog",
    }


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file: lower case, punctuation
    other than ``-`` and ``_`` dropped, spaces as ``-``."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    }


def _dashboard_panels() -> dict[str, set[int]]:
    """uid -> the panel ids of that dashboard."""
    out = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        out[dashboard["uid"]] = {
            p["id"] for top in dashboard["panels"] for p in (top, *top.get("panels", []))
        }
    return out


def test_every_alert_is_documented_and_unit_tested() -> None:
    firing, quiet = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for item in case.get("alert_rule_test", []):
                (firing if item.get("exp_alerts") else quiet).add(item["alertname"])
    anchors = _github_anchors((ROOT / "docs" / "runbooks.md").read_text())
    panels = _dashboard_panels()
    assert _rules()
    for rule in _rules():
        name = rule["alert"]
        annotations = rule["annotations"]
        assert rule.get("for"), name
        # "none": the Watchdog, which is not a problem but the proof the pipeline works.
        severities = {"none"} if name == "Watchdog" else {"warning", "critical"}
        assert rule["labels"]["severity"] in severities, name
        assert set(annotations) == {
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
        }, name
        doc, _, anchor = annotations["runbook_url"].partition("#")
        assert doc == "docs/runbooks.md" and anchor in anchors, (name, annotations["runbook_url"])
        url = urlsplit(annotations["dashboard_url"])
        uid = url.path.removeprefix("/d/")
        (panel,) = parse_qs(url.query)["viewPanel"]
        assert url.netloc == "localhost:3001" and int(panel) in panels.get(uid, set()), (
            name,
            annotations["dashboard_url"],
        )
        assert name in firing and name in quiet, (
            f"{name}: needs a promtool test where it fires and one where it does not"
        )


def test_runbook_anchor_check_reads_headings_as_github_does() -> None:
    assert _github_anchors("# Runbooks\n\n## SLOErrorBudgetBurn\n## A b, c (d)\ntext ## x") == {
        "runbooks",
        "sloerrorbudgetburn",
        "a-b-c-d",
    }


def test_every_route_belongs_to_one_slo() -> None:
    """slo.yml's route table (slo:route_class:info) names each route of kong/kong.yml once,
    its edge_jwt label says whether edge-jwt is optional there, and its latency bucket is one
    of Kong's request-latency bucket bounds."""
    kong = yaml.safe_load((ROOT / "kong" / "kong.yml").read_text())
    routes = {r["name"] for service in kong["services"] for r in service["routes"]}
    optional = {
        p["route"]
        for p in kong["plugins"]
        if p["name"] == "edge-jwt" and p.get("route") and p["config"].get("optional")
    }
    table = [r["labels"] for r in _all_rules() if r.get("record") == "slo:route_class:info"]
    assert sorted(row["route"] for row in table) == sorted(routes)
    for row in table:
        expected = "optional" if row["route"] in optional else "required"
        assert row["edge_jwt"] == expected, row
        assert int(row["le"]) in UPSTREAM_LATENCY_BUCKETS, row
    objectives = {
        (r["labels"]["slo"], r["labels"]["sli"])
        for r in _all_rules()
        if r.get("record") == "slo:objective:ratio"
    }
    assert objectives == {
        (slo, sli) for slo in {row["slo"] for row in table} for sli in ("availability", "latency")
    }


def test_alert_rules_use_only_metrics_the_code_defines() -> None:
    defined = defined_metric_names()
    unknown = {
        rule.get("alert", rule.get("record")): sorted(metric_names(rule["expr"]) - defined)
        for rule in _all_rules()
    }
    assert not {k: v for k, v in unknown.items() if v}, unknown


def _reasons(rule_name: str) -> set[str]:
    (rule,) = [r for r in _rules() if r["alert"] == rule_name]
    (pattern,) = set(re.findall(r'reason=~"([^"]+)"', rule["expr"]))
    return set(pattern.split("|"))


def test_bypass_pages_only_on_what_a_client_cannot_shape() -> None:
    """The page takes the reasons only a bypassed (or broken) edge produces, the warning the
    ones any client can produce through a working edge: both as the backend's identity rules
    classify them, every reason but Redis being down in exactly one of the two."""
    from edge_identity.rules import BYPASS_EVIDENCE, CLIENT_SHAPED, Rejection

    assert _reasons("AuthGatewayBypassDetected") == {r.value for r in BYPASS_EVIDENCE}
    assert _reasons("AuthGatewayIdentityRefused") == {r.value for r in CLIENT_SHAPED}
    assert not BYPASS_EVIDENCE & CLIENT_SHAPED
    assert BYPASS_EVIDENCE | CLIENT_SHAPED == set(Rejection) - {Rejection.UNAVAILABLE}
