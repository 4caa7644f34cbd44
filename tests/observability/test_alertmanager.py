"""Alertmanager's routing and inhibition, checked with the real Alertmanager and amtool.

Routing: ``amtool config routes test`` names the receiver of a label set. Inhibition: a
running Alertmanager (the repository's alertmanager.yml; its webhook receivers are
unreachable here, which only fails the notifications) receives pairs of alerts through
``amtool alert add`` and ``amtool alert query --inhibited`` shows which it holds back. Every
alert sent carries the label names the rule gives it (the promtool tests' expectations), so
the pairs are ones the rules really produce.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.observability.support import ALERTMANAGER, RULE_FILES, RULE_TESTS, run, tool
from tests.support.harness import free_port

CONFIG = ALERTMANAGER / "alertmanager.yml"

SLO_PAGE = {
    "alertname": "SLOErrorBudgetBurn",
    "severity": "critical",
    "slo": "edge-public",
    "sli": "availability",
    "window": "6h",
}
SLO_TICKET = {**SLO_PAGE, "severity": "warning", "window": "3d"}
CRASH_LOOP = {
    "alertname": "EdgePluginServerRestarts",
    "severity": "critical",
    "job": "edge-jwt",
    "instance": "kong:9102",
}
CERT_WEEK = {
    "alertname": "CertificateExpiresSoon",
    "severity": "critical",
    "job": "edge-jwt",
    "instance": "kong:9102",
    "source": "edge-jwt public_keys_pem",
    "subject": "CN=issuer",
}
JWKS_STALE = {
    "alertname": "EdgeJwksStale",
    "severity": "critical",
    "job": "edge-jwt",
    "instance": "kong:9102",
    "source": "http://backend:8080/api/auth/.well-known/jwks.json",
}
BREAKER = {
    "alertname": "EdgeRateLimitBreakerOpen",
    "severity": "critical",
    "job": "edge-rate-limit",
    "instance": "kong:9103",
    "store": "redis:6379",
}
TARGET_DOWN = {
    "alertname": "TargetDown",
    "severity": "critical",
    "job": "auth-backend",
    "instance": "backend:9100",
}

# (what fires first, what fires with it, whether Alertmanager holds the second back)
PAIRS = [
    (SLO_PAGE, SLO_TICKET, True),
    (SLO_PAGE, {**SLO_TICKET, "slo": "login"}, False),  # another SLO's ticket
    (SLO_PAGE, {**SLO_TICKET, "sli": "latency"}, False),
    (CRASH_LOOP, {**CRASH_LOOP, "severity": "warning"}, True),
    (
        CRASH_LOOP,
        {**CRASH_LOOP, "severity": "warning", "job": "edge-trace", "instance": "kong:9101"},
        False,
    ),
    (CERT_WEEK, {**CERT_WEEK, "severity": "warning"}, True),
    (CERT_WEEK, {**CERT_WEEK, "severity": "warning", "subject": "CN=other"}, False),
    (
        JWKS_STALE,
        {
            "alertname": "EdgeJwksFetchFailures",
            "severity": "warning",
            "job": "edge-jwt",
            "instance": "kong:9102",
        },
        True,
    ),
    (
        BREAKER,
        {
            "alertname": "EdgeRateLimitStoreFailures",
            "severity": "warning",
            "job": "edge-rate-limit",
            "route": "auth-login",
            "outcome": "store_failure_local",
        },
        True,
    ),
    (
        TARGET_DOWN,
        {"alertname": "AuthDatabaseGaugesMissing", "severity": "warning", "job": "auth-backend"},
        True,
    ),
    (
        TARGET_DOWN,
        {
            "alertname": "AuthLoginThrottleErrors",
            "severity": "warning",
            "job": "auth-backend",
            "operation": "check",
        },
        False,
    ),
]


def _rendered_label_names() -> dict[str, set[frozenset[str]]]:
    """alertname -> the label-name sets the promtool tests expect the rules to produce."""
    out: dict[str, set[frozenset[str]]] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for item in case.get("alert_rule_test", []):
                for alert in item.get("exp_alerts") or []:
                    names = frozenset({"alertname", *alert["exp_labels"]})
                    out.setdefault(item["alertname"], set()).add(names)
    return out


def test_the_pairs_are_alerts_the_rules_produce() -> None:
    rendered = _rendered_label_names()
    for first, second, _ in PAIRS:
        for labels in (first, second):
            assert frozenset(labels) in rendered.get(labels["alertname"], set()), labels


def test_every_inhibition_names_alerts_that_exist() -> None:
    alerts: dict[str, set[str]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    config = yaml.safe_load(CONFIG.read_text())
    for rule in config["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            for matcher in rule[side]:
                name, op, value = _split(matcher)
                if name == "alertname":
                    pattern = value if op == "=~" else _escape(value)
                    assert any(_full_match(pattern, a) for a in alerts), matcher
    # the severity rule applies to something: alerts defined at both severities
    assert {n for n, s in alerts.items() if {"warning", "critical"} <= s} == {
        "SLOErrorBudgetBurn",
        "EdgePluginServerRestarts",
        "CertificateExpiresSoon",
    }


def _split(matcher: str) -> tuple[str, str, str]:
    for op in ("=~", "!~", "!=", "="):
        if op in matcher:
            name, value = matcher.split(op, 1)
            return name.strip(), op, value.strip().strip('"')
    raise AssertionError(matcher)


def _escape(value: str) -> str:
    return re.escape(value)


def _full_match(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "Watchdog", "severity": "none"}, "watchdog"),
        ({"alertname": "SLOErrorBudgetBurn", "severity": "critical"}, "alert-sink"),
        ({"alertname": "EdgeJwtFailedOpen", "severity": "warning"}, "alert-sink"),
    ],
)
def test_routes(labels: dict[str, str], receiver: str) -> None:
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [receiver]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = tool("prometheus-alertmanager")
    work = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    log = work / "log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={CONFIG}",
                f"--storage.path={work}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _amtool(url: str, *args: str) -> str:
    result = run(tool("amtool"), *args, f"--alertmanager.url={url}")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(("first", "second", "inhibited"), PAIRS)
def test_inhibition_of_real_pairs(
    alertmanager: str, first: dict[str, str], second: dict[str, str], inhibited: bool
) -> None:
    # A label of this test only keeps each case's alerts apart from the others'.
    case = {"case": f"{len(first)}-{time.monotonic_ns()}"}
    for labels in (first, second):
        _amtool(alertmanager, "alert", "add", *(f"{k}={v}" for k, v in {**labels, **case}.items()))
    query = json.loads(
        _amtool(
            alertmanager,
            "alert",
            "query",
            "--inhibited",
            "--active",
            "-o",
            "json",
            f"case={case['case']}",
        )
    )
    held_back = {
        tuple(sorted(a["labels"].items())): bool(a["status"]["inhibitedBy"]) for a in query
    }
    assert held_back == {
        tuple(sorted({**first, **case}.items())): False,
        tuple(sorted({**second, **case}.items())): inhibited,
    }


def test_an_unrelated_alert_is_not_held_back(alertmanager: str) -> None:
    labels = {
        "alertname": "EdgeJwtFailedOpen",
        "severity": "warning",
        "job": "edge-jwt",
        "instance": "kong:9102",
        "reason": "keys_unavailable",
        "case": "alone",
    }
    _amtool(alertmanager, "alert", "add", *(f"{k}={v}" for k, v in labels.items()))
    (alert,) = json.loads(
        _amtool(alertmanager, "alert", "query", "-i", "-a", "-o", "json", "case=alone")
    )
    assert alert["status"]["inhibitedBy"] == []
