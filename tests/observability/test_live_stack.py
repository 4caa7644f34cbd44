"""A real Prometheus scrapes a running stack: the backend, the harness gateway with the three
shipped plugin servers and Kong's Status API, Alertmanager and itself.

The Prometheus configuration is generated from observability/prometheus/prometheus.yml (the
same jobs, paths and labels; loopback targets on free ports; a 1 s scrape and evaluation
interval; the repository's rule files). A scripted mix of requests goes through the gateway
(sign-up, verification, good and bad logins up to the login limit's 429, profile reads, a
401 without a token and one with a bad token, a refresh and a refresh-token reuse; plus one
keyless call on the backend's internal listener), then the checks read Prometheus's HTTP
API: every target up, the counters rose by what was sent, every alert rule and dashboard
expression evaluates, every dashboard panel has data, and ``promtool check metrics`` finds
nothing to say about our exporters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

# What promtool's linter says of Kong 3.9.3's own metric names: the emulation keeps them.
from tests.observability.support import (
    DASHBOARDS,
    FOREIGN,
    PROMETHEUS,
    ROOT,
    RULE_FILES,
    grafana_to_promql,
    tool,
)
from tests.support.backend import PASSWORD, Backend, bearer, repo_kong_yml, running_backend
from tests.support.harness import KONG_NAMING_LINT, SHIPPED_FLAGS, HarnessRunner, free_port
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require

PLUGINS = ("edge-trace", "edge-jwt", "edge-rate-limit")

# Panels that legitimately have no series after this traffic, with the reason. Empty: every
# panel's metric exists from the start or is driven below.
NO_DATA_EXPECTED: dict[str, str] = {
    # The backend serves plain HTTP here and edge-jwt takes its keys from the JWKS: no process
    # loads a certificate (backend/tests/test_metrics_certificates.py and
    # kong-plugins/tests/test_metrics_certificates.py cover both gauges).
    "edge.json: Certificate expiry (days left)": "no certificate is loaded here",
}


@dataclass
class Stack:
    prometheus: str
    backend: Backend
    runner: HarnessRunner
    plugin_metrics: dict[str, str]
    spans: OtlpReceiver
    # (route, code) of every response the gateway gave to the scripted traffic.
    sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    # Passwords, codes and tokens the traffic carried; none may reach a log line.
    secrets: set[str] = field(default_factory=set)
    # What the harness and the plugin servers logged (kong_harness.* loggers).
    gateway_log: list[str] = field(default_factory=list)
    before: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)
    after: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10, trust_env=False
        )
        return response.json()


# Counters compared before and after the traffic: name -> (PromQL, its grouping labels).
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "logins": ('sum by (status) (auth_login_total{job="auth-backend"})', ("status",)),
    "kong": ('sum by (route, code) (kong_http_requests_total{job="kong"})', ("route", "code")),
    "jwt": ('sum by (result) (edge_jwt_validations_total{job="edge-jwt"})', ("result",)),
    "rate_limit": (
        'sum by (route, outcome) (edge_rate_limit_decisions_total{job="edge-rate-limit"})',
        ("route", "outcome"),
    ),
}


def _snapshot(stack: Stack) -> dict[str, dict[tuple[str, ...], float]]:
    out = {}
    for name, (expr, labels) in COUNTERS.items():
        answer = stack.query(expr)
        assert answer["status"] == "success", (expr, answer)
        out[name] = {
            tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
            for r in answer["data"]["result"]
        }
    return out


def _delta(stack: Stack, name: str) -> dict[tuple[str, ...], float]:
    before, after = stack.before[name], stack.after[name]
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value - before.get(key, 0.0)
    }


# --- processes -----------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Every record of the harness and of the plugin servers' output it relays."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{url} not ready: {log.read_text()[-3000:]}"
        time.sleep(0.1)


def prometheus_config(targets: dict[str, str], alertmanager: str) -> dict[str, Any]:
    """observability/prometheus/prometheus.yml for this stack: every job of that file (its
    name, metrics path and static labels; ``targets`` maps each job name to a loopback
    host:port), 1 s intervals and the rule files by absolute path.

    A job's transport settings (``scheme``, ``tls_config``: the compose stack's mTLS to the
    backend, with certificates relative to that file) are left out: the processes here
    serve plain HTTP on 127.0.0.1."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert sorted(jobs) == sorted(targets), "a job of prometheus.yml has no live target here"
    return {
        "global": {**config["global"], "scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                **{key: job[key] for key in ("job_name", "metrics_path") if key in job},
                "static_configs": [
                    {
                        "targets": [targets[job["job_name"]]],
                        **({"labels": s["labels"]} if "labels" in s else {}),
                    }
                    for s in job["static_configs"]
                ],
            }
            for job in config["scrape_configs"]
        ],
    }


# --- the traffic ---------------------------------------------------------------------------


def _drive(stack: Stack, client: httpx.Client) -> None:
    """The scripted mix, from one client address (X-Real-IP from the trusted 127.0.0.1, as
    nginx's realip module; fresh per run so the Redis-backed limits start empty)."""
    ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    client.headers["X-Real-IP"] = ip

    def send(method: str, path: str, route: str, expect: int, **kwargs: Any) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        stack.sent[(route, expect)] += 1
        return response

    email = f"live-{random.getrandbits(48):012x}@example.com"
    stack.secrets |= {PASSWORD, "wrong-password-1"}
    send(
        "POST",
        "/api/auth/register",
        "auth-register",
        202,
        json={"email": email, "password": PASSWORD},
    )
    # Not a secret of the logs here: the console e-mail backend of this test writes the mail,
    # code included, to the backend's output (that is how the test reads it).
    verification = stack.backend.verification_token(email)
    send(
        "POST",
        "/api/auth/verify-email",
        "auth-public",
        200,
        json={"token": verification},
    )
    pair = send(
        "POST", "/api/auth/login", "auth-login", 200, json={"email": email, "password": PASSWORD}
    ).json()
    stack.secrets |= {pair["access_token"], pair["refresh_token"]}
    stack.secrets.add(pair["access_token"].rsplit(".", 1)[1])  # the signature alone
    for _ in range(3):
        send("GET", "/api/auth/profile", "auth-profile", 200, headers=bearer(pair["access_token"]))
    send("GET", "/api/auth/profile", "auth-profile", 401)  # no token: edge-jwt refuses
    send("GET", "/api/auth/profile", "auth-profile", 401, headers=bearer("not.a.jwt"))
    # Refresh, then present the rotated token again: reuse (the session is revoked).
    send(
        "POST",
        "/api/auth/token/refresh",
        "auth-token-refresh",
        200,
        json={"refresh_token": pair["refresh_token"]},
    )
    send(
        "POST",
        "/api/auth/token/refresh",
        "auth-token-refresh",
        401,
        json={"refresh_token": pair["refresh_token"]},
    )
    # Logins are limited to 5 a minute per address (kong.yml): 4 wrong passwords, then 429.
    for _ in range(4):
        send(
            "POST",
            "/api/auth/login",
            "auth-login",
            401,
            json={"email": email, "password": "wrong-password-1"},
        )
    send(
        "POST",
        "/api/auth/login",
        "auth-login",
        429,
        json={"email": email, "password": "wrong-password-1"},
    )
    send("GET", "/api/auth/health/live/", "auth-public", 200)
    # The internal API is not routed by the gateway: a caller without a key, on its listener.
    internal = httpx.post(
        f"{stack.backend.internal_url}/internal/auth/validate-token",
        json={"token": pair["access_token"]},
        timeout=10,
        trust_env=False,
    )
    assert internal.status_code in (401, 403), internal.text


def _poll(check: Any, timeout: float = 15) -> Any:
    """``check()`` until it returns without an AssertionError (the last one is raised)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    prometheus_bin = tool("prometheus")
    alertmanager_bin = tool("prometheus-alertmanager")
    require(redis_unavailable())
    work = Path(tempfile.mkdtemp(prefix="live-stack-"))
    ports = {name: free_port() for name in (*PLUGINS, "prometheus", "alertmanager")}
    with contextlib.ExitStack() as stop, pytest.MonkeyPatch.context() as patch:
        stop.callback(shutil.rmtree, work, ignore_errors=True)
        # kong.yml's env-vault references: the rate-limit store is the test Redis (so the
        # store and breaker metrics are live); edge-trace exports its spans to a real OTLP
        # receiver (the exemplars must name traces that were collected).
        patch.setenv("EDGE_RATE_LIMIT_REDIS_URL", REDIS_TEST_URL)
        receiver = stop.enter_context(OtlpReceiver())
        patch.setenv("EDGE_TRACE_OTLP_ENDPOINT", receiver.endpoint)
        (work / "backend").mkdir()
        # The backend's spans go to the same receiver and its access log is on: the trace an
        # exemplar opens has the backend's part and its log lines (trace_id in each).
        backend = stop.enter_context(
            running_backend(
                work / "backend",
                extra_env={
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
                    "OTEL_BSP_SCHEDULE_DELAY": "200",
                    "GUNICORN_ACCESS_LOG": "1",
                },
            )
        )
        doc = repo_kong_yml(backend, plugins=("prometheus", *PLUGINS))
        assert doc["plugins"][0]["name"] == "prometheus"
        runner = HarnessRunner(
            yaml.safe_dump(doc, sort_keys=False),
            servers={name: {} for name in PLUGINS},
            commands={
                name: f"{name} --metrics-port {ports[name]} --metrics-address 127.0.0.1 "
                + SHIPPED_FLAGS.get(name, "")
                for name in PLUGINS
            },
            status=True,
        )
        stop.callback(runner.stop)
        capture = _Capture()
        gateway_logger = logging.getLogger("kong_harness")
        level = gateway_logger.level
        gateway_logger.addHandler(capture)
        gateway_logger.setLevel(logging.DEBUG)
        stop.callback(gateway_logger.setLevel, level)
        stop.callback(gateway_logger.removeHandler, capture)
        runner.start()

        (work / "am").mkdir()
        (work / "am.yml").write_text(
            yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
        )
        am_log = work / "alertmanager.log"
        am = stop.enter_context(
            _process(
                [
                    alertmanager_bin,
                    f"--config.file={work / 'am.yml'}",
                    f"--storage.path={work / 'am'}",
                    "--cluster.listen-address=",
                    f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                ],
                am_log,
            )
        )
        _wait_ok(f"http://127.0.0.1:{ports['alertmanager']}/-/ready", am, am_log)

        targets = {
            "kong": f"127.0.0.1:{runner.status_port}",
            **{name: f"127.0.0.1:{ports[name]}" for name in PLUGINS},
            "auth-backend": f"127.0.0.1:{backend.metrics_port}",
            "alertmanager": f"127.0.0.1:{ports['alertmanager']}",
            "prometheus": f"127.0.0.1:{ports['prometheus']}",
        }
        config = prometheus_config(targets, targets["alertmanager"])
        (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        prom_log = work / "prometheus.log"
        prom = stop.enter_context(
            _process(
                [
                    prometheus_bin,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    # as docker-compose.yml runs it: exemplars of the plugin servers
                    "--enable-feature=exemplar-storage",
                ],
                prom_log,
            )
        )
        url = f"http://127.0.0.1:{ports['prometheus']}"
        _wait_ok(f"{url}/-/ready", prom, prom_log)

        live = Stack(
            url,
            backend,
            runner,
            {name: f"http://127.0.0.1:{ports[name]}/metrics" for name in PLUGINS},
            receiver,
        )
        _poll(lambda: _assert_targets_up(live))
        time.sleep(1.5)  # a second scrape of every target before the baseline
        live.before = _snapshot(live)
        with runner.client() as client:
            _drive(live, client)
        runner.drain_logs()
        live.gateway_log = [capture.format(r) for r in capture.records]

        def settled() -> None:
            live.after = _snapshot(live)
            _assert_counters(live)

        _poll(settled)
        time.sleep(3)  # series born in the traffic get a few samples: rate() sees them
        yield live


# --- checks --------------------------------------------------------------------------------


def _assert_targets_up(stack: Stack) -> dict[str, str]:
    response = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10, trust_env=False)
    active = response.json()["data"]["activeTargets"]
    health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in active}
    expected = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert set(health) == expected, health
    assert all(h == "up" for h, _ in health.values()), health
    return {job: h for job, (h, _) in health.items()}


def _assert_counters(stack: Stack) -> None:
    sent = stack.sent
    logins = _delta(stack, "logins")
    assert logins == {("success",): 1, ("failure",): 4}, logins  # the 429 never got there
    kong = _delta(stack, "kong")
    assert kong == {(route, str(code)): float(n) for (route, code), n in sent.items()}, kong
    total = sum(sent.values())
    jwt = _delta(stack, "jwt")
    assert sum(jwt.values()) == total, jwt  # edge-jwt runs on every route
    assert jwt.get(("rejected",)) == 2, jwt  # no token, a malformed token
    rate_limit = _delta(stack, "rate_limit")
    # edge-rate-limit runs after edge-jwt: the two requests edge-jwt refused never got there.
    assert sum(rate_limit.values()) == total - 2, rate_limit
    assert {k: v for k, v in rate_limit.items() if k[1] != "allowed"} == {
        ("auth-login", "rejected"): 1
    }, rate_limit


def test_every_target_is_up(stack: Stack) -> None:
    assert _assert_targets_up(stack) == {
        job: "up" for job in ("kong", *PLUGINS, "auth-backend", "alertmanager", "prometheus")
    }


def test_counters_rose_by_the_traffic(stack: Stack) -> None:
    _assert_counters(stack)
    assert sum(stack.sent.values()) == 16


def _rules() -> list[tuple[str, str]]:
    return [
        (f"{path.name}: {rule.get('alert', rule.get('record'))}", rule["expr"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _panels() -> list[tuple[str, list[str]]]:
    """(where, [PromQL of each target]) of every dashboard panel."""
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
        out += [
            (f"{path.name}: {panel['title']}", [t["expr"] for t in panel["targets"]])
            for panel in panels
            if panel.get("type") != "row"
        ]
    return out


def test_every_rule_and_panel_expression_evaluates(stack: Stack) -> None:
    expressions = _rules() + [
        (f"{where} #{i}", grafana_to_promql(expr))
        for where, exprs in _panels()
        for i, expr in enumerate(exprs)
    ]
    failures = {}
    for where, expr in expressions:
        answer = stack.query(expr)
        if answer["status"] != "success" or answer.get("warnings"):
            failures[where] = answer
    assert not failures, failures
    assert len(expressions) >= 60


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    def check() -> None:
        response = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10, trust_env=False)
        rules = [r for g in response.json()["data"]["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == {w.split(": ")[1] for w, _ in _rules()}
        bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not bad, bad

    _poll(check, timeout=5)


def test_every_dashboard_panel_has_data(stack: Stack) -> None:
    panels = _panels()
    empty = {}
    for where, exprs in panels:
        answer = stack.query(grafana_to_promql(exprs[0]))
        if not answer["data"]["result"]:
            empty[where] = exprs[0]
    assert empty.keys() == NO_DATA_EXPECTED.keys(), empty


def test_exemplars_open_traces_that_were_collected(stack: Stack) -> None:
    """Prometheus stores the exemplars of edge_jwt_verify_seconds (OpenMetrics scrape,
    exemplar storage on) and each names the trace of a request edge-trace exported."""

    def exemplar_trace_ids() -> set[str]:
        response = httpx.get(
            f"{stack.prometheus}/api/v1/query_exemplars",
            params={
                "query": "edge_jwt_verify_seconds_bucket",
                "start": time.time() - 600,
                "end": time.time() + 60,
            },
            timeout=10,
            trust_env=False,
        ).json()
        assert response["status"] == "success", response
        ids = {
            exemplar["labels"]["trace_id"]
            for series in response["data"]
            for exemplar in series["exemplars"]
        }
        assert ids
        return ids

    ids = _poll(exemplar_trace_ids)
    spans = stack.spans.wait_for(
        lambda spans: ids <= {s.trace_id for s in spans if s.service_name == "kong-edge"}
    )
    assert ids <= {s.trace_id for s in spans}
    # The trace's logs by trace_id, as Grafana's derived field reads them: a request that
    # went upstream has the backend's spans in the same trace and its access-log line.
    (field,) = [
        f
        for ds in yaml.safe_load(
            (ROOT / "observability/grafana/provisioning/datasources/datasources.yml").read_text()
        )["datasources"]
        if ds["type"] == "loki"
        for f in ds["jsonData"]["derivedFields"]
    ]
    logged = {
        m.group(1)
        for line in stack.backend.log.read_text(errors="replace").splitlines()
        if (m := re.search(field["matcherRegex"], line))
    }
    upstream = ids & logged
    assert upstream, (ids, sorted(logged)[:5])
    stack.spans.wait_for(
        lambda spans: upstream <= {s.trace_id for s in spans if s.service_name == "auth-backend"}
    )
    trace_id = sorted(upstream)[0]
    line = next(line for line in stack.backend.log.read_text().splitlines() if trace_id in line)
    print(f"exemplar trace ids {sorted(ids)}; {trace_id}'s backend log line: {line}")


def test_no_secret_reaches_a_log(stack: Stack) -> None:
    """The passwords and the tokens the traffic carried appear in no line the
    backend, the harness or the plugin servers logged (plugin servers: their stderr, which
    the harness relays as Kong does into its error log)."""
    backend = stack.backend.log.read_text(errors="replace")
    assert stack.gateway_log and backend
    assert any("[edge-jwt:" in line for line in stack.gateway_log)  # plugin output is there
    assert len(stack.secrets) == 5
    leaked = {
        secret[:12] + "…": where
        for secret in stack.secrets
        for where, text in (("backend", backend), ("gateway", "\n".join(stack.gateway_log)))
        if secret in text
    }
    assert not leaked, leaked


def test_the_series_of_other_software_exist(stack: Stack) -> None:
    """The names the rules and panels take from Prometheus, Alertmanager and
    prometheus_client's process collector (support.FOREIGN) are really exported."""
    missing = {name for name in FOREIGN if not stack.query(f"count({name})")["data"]["result"]}
    assert not missing, missing


def _lint(text: str) -> set[str]:
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return set((result.stdout + result.stderr).splitlines()) - {""}


@pytest.mark.parametrize("target", [*PLUGINS, "auth-backend", "kong"])
def test_promtool_lint_of_each_exporter(stack: Stack, target: str) -> None:
    if target == "auth-backend":
        url = f"{stack.backend.metrics_url}/metrics"
    elif target == "kong":
        url = f"{stack.runner.status_url}/metrics"
    else:
        url = stack.plugin_metrics[target]
    response = httpx.get(url, timeout=10, trust_env=False)
    assert response.status_code == 200
    findings = _lint(response.text)
    assert findings == (KONG_NAMING_LINT if target == "kong" else set()), findings


def test_the_generated_config_keeps_every_job_and_label() -> None:
    original = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in original["scrape_configs"]]
    config = prometheus_config(
        {job: f"127.0.0.1:{9000 + i}" for i, job in enumerate(jobs)}, "127.0.0.1:1"
    )
    for old, new in zip(original["scrape_configs"], config["scrape_configs"], strict=True):
        assert old["job_name"] == new["job_name"]
        assert [s.get("labels") for s in old["static_configs"]] == [
            s.get("labels") for s in new["static_configs"]
        ]
    assert config["rule_files"] and all(
        Path(p).is_absolute() and Path(p).is_file() for p in config["rule_files"]
    )
    assert config["global"]["scrape_interval"] == "1s"
