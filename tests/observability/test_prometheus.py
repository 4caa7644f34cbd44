"""Prometheus and Alertmanager configuration, checked by the real promtool and amtool."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.observability.support import (
    ALERTMANAGER,
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


def _rules() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_promtool_check_config(tmp_path: Path) -> None:
    """As mounted in the stack: the certificates the backend job presents (certs/, from
    scripts/dev-certs) beside the config; promtool checks that those files exist."""
    config = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, config)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/dev_certs.py"), "--out", str(config / "certs")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    assert RULE_FILES
    result = run(tool("promtool"), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    result = run(tool("promtool"), "test", "rules", *RULE_TESTS, cwd=PROMETHEUS)
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
    (receiver,) = config["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "http://alert-sink:8080/"


def test_every_alert_is_documented_and_unit_tested() -> None:
    tested = {
        item["alertname"]
        for path in RULE_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for item in case.get("alert_rule_test", [])
    }
    firing, quiet = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for item in case.get("alert_rule_test", []):
                (firing if item.get("exp_alerts") else quiet).add(item["alertname"])
    for rule in _rules():
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook"].startswith("Check first:"), name
        assert name in tested and name in firing and name in quiet, (
            f"{name}: needs a promtool test where it fires and one where it does not"
        )


def test_alert_rules_use_only_metrics_the_code_defines() -> None:
    defined = defined_metric_names()
    unknown = {rule["alert"]: sorted(metric_names(rule["expr"]) - defined) for rule in _rules()}
    assert not {k: v for k, v in unknown.items() if v}, unknown
