"""The Kubernetes manifests (deploy/kubernetes), rendered and checked offline by real tools:
``kubectl kustomize``, kubernetes-validate (the Kubernetes OpenAPI schemas), checkov (security
policies) and network-config-analyzer (the connectivity NetworkPolicies allow). The last
three live in .tools/k8s (``make k8s-tools``, which ``make test`` runs). A missing tool
skips locally and fails in CI (tests/support/services.py ``require``)."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kong_harness.conf import parse_conf_text
from kong_harness.declarative import load_declarative
from tests.observability.support import tool
from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy/kubernetes/overlays"
TOOLS = ROOT / ".tools/k8s"
KONG_CONF_TEXT = (ROOT / "kong/kong.conf").read_text()
KONG_CONF = parse_conf_text(KONG_CONF_TEXT)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
NAMESPACE = "api-edge"


def _generator() -> ModuleType:  # deploy/ is no package: load the script by its path
    spec = importlib.util.spec_from_file_location(
        "gen_prometheus_rules", ROOT / "deploy/kubernetes/gen_prometheus_rules.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The oldest and newest Kubernetes versions docs/operations.md supports (kubernetes-validate ships
# both schemas).
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")

# Custom resources of the Prometheus Operator: no schema in kubernetes-validate; the
# PrometheusRule goes through promtool and the ServiceMonitors through the checks below.
OPERATOR_KINDS = {"PrometheusRule", "ServiceMonitor"}

# KONG_* variables the Kong container may set (each overrides kong.conf), and why.
KONG_ENV_OVERRIDES = {
    "KONG_DATABASE",  # DB-less (also the image's ENV)
    "KONG_DECLARATIVE_CONFIG",  # the ConfigMap's kong.yml
    "KONG_NGINX_PROXY_PROXY_SSL_VERIFY",  # tls_verify against the backend's CA
    "KONG_NGINX_PROXY_PROXY_SSL_TRUSTED_CERTIFICATE",
    "KONG_NGINX_WORKER_PROCESSES",  # nginx's `auto` would count the node's cores
}


# --- rendering ---------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl")
    require(None if path else "kubectl is not installed (it renders the kustomize overlays)")
    assert path is not None
    return path


def tool_in_venv(venv: str, name: str) -> str:
    path = TOOLS / venv / "bin" / name
    require(None if path.is_file() else f"{path.relative_to(ROOT)} is missing: run make k8s-tools")
    return str(path)


@functools.cache
def rendered_text(overlay: str) -> str:
    # Stock kustomize, as `kubectl apply -k`, Argo CD and Flux run it: no flag lifts its load
    # restriction, so an overlay renders only if every file it loads is inside it.
    result = subprocess.run(
        [kubectl(), "kustomize", str(OVERLAYS / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


@pytest.fixture(scope="module", params=["dev", "prod"])
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rendered_file(overlay: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered_text(overlay))
    return path


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def configmap(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """A generated ConfigMap by its name before kustomize's hash suffix."""
    matches = [
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    assert len(matches) == 1, prefix
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """kind/name -> pod spec of every workload."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    }


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_both_overlays_render_into_the_namespace_without_inline_secrets(overlay):
    objects = rendered(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Job", "Service", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    assert "Secret" not in kinds, "Secrets are created beside the manifests, never rendered"
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, o["metadata"]["name"]
    assert (
        find(objects, "Namespace", NAMESPACE)["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )


def test_the_overlays_differ_where_documented():
    dev, prod = rendered("dev"), rendered("prod")
    dev_names = {(o["kind"], o["metadata"]["name"]) for o in dev}
    prod_names = {(o["kind"], o["metadata"]["name"]) for o in prod}
    # dev: Redis and PostgreSQL in the cluster, no autoscaling, one replica each.
    assert {("Deployment", "redis"), ("Deployment", "postgres")} <= dev_names
    assert not any(kind == "HorizontalPodAutoscaler" for kind, _ in dev_names)
    for name in ("kong", "backend", "outbox-relay"):
        assert find(dev, "Deployment", name)["spec"]["replicas"] == 1
    # prod: managed stores (the `redis` name resolves to them), autoscaled Kong and backend.
    assert ("Deployment", "postgres") not in prod_names and (
        "Deployment",
        "redis",
    ) not in prod_names
    assert find(prod, "Service", "redis")["spec"]["type"] == "ExternalName"
    for name in ("kong", "backend"):
        hpa = find(prod, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] >= 3
        assert "replicas" not in find(prod, "Deployment", name)["spec"], "the HPA owns it"
        assert find(prod, "PodDisruptionBudget", name)["spec"]["minAvailable"] == 2
    assert {kind for kind in OPERATOR_KINDS} <= {o["kind"] for o in prod}


# --- the official schemas ----------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered_file, version):
    validate = tool_in_venv("kube", "kubernetes-validate")
    result = subprocess.run(
        [validate, "--strict", "-k", version, str(rendered_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.findall(r"passed for resource (\S+)", output)
    objects = rendered(rendered_file.stem)
    assert len(passed) == sum(o["kind"] not in OPERATOR_KINDS for o in objects)
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", output))
    assert unknown <= OPERATOR_KINDS


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path):
    validate = tool_in_venv("kube", "kubernetes-validate")
    text = rendered_text("dev").replace(
        "  revisionHistoryLimit: 5\n", "  revisionHistoryLimt: 5\n", 1
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    result = subprocess.run(
        [validate, "--strict", "-k", KUBERNETES_VERSIONS[-1], str(broken)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "revisionHistoryLimt" in result.stdout + result.stderr


def test_operations_doc_names_the_supported_versions():
    readme = (ROOT / "docs" / "operations.md").read_text()
    oldest, newest = (v.rsplit(".", 1)[0] for v in KUBERNETES_VERSIONS)
    assert f"Kubernetes {oldest} to {newest}" in readme


# --- checkov -----------------------------------------------------------------------------


def run_checkov(*files: Path) -> subprocess.CompletedProcess[str]:
    checkov = tool_in_venv("checkov", "checkov")
    args = [checkov, "--framework", "kubernetes", "--compact", "--skip-download", "--quiet"]
    for file in files:
        args += ["-f", str(file)]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=300, check=False, cwd=file.parent
    )


def test_checkov_passes(tmp_path):
    files = []
    for overlay in ("dev", "prod"):
        files.append(tmp_path / f"{overlay}.yaml")
        files[-1].write_text(rendered_text(overlay))
    result = run_checkov(*files)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", result.stdout), result.stdout


def test_every_checkov_skip_says_why(overlay):
    skips = 0
    for o in rendered(overlay):
        for key, value in (o["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), value
                assert len(reason.split()) >= 8, (
                    f"{o['metadata']['name']}: {value!r} gives no reason"
                )
                skips += 1
    assert skips > 0


def test_checkov_fails_a_privileged_root_pod(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bad", "namespace": NAMESPACE},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "x:latest", "securityContext": {"privileged": True}}
                    ]
                },
            }
        )
    )
    result = run_checkov(bad)
    assert result.returncode != 0
    assert "CKV_K8S_16" in result.stdout  # "Container should not be privileged"


# --- production defaults -------------------------------------------------------------------


def test_every_container_is_locked_down(overlay):
    for name, spec in pod_specs(rendered(overlay)).items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(spec):
            where = f"{name} {container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            for env in container.get("env", []):
                value = env.get("value", "")
                inlined = re.search(r"://[^/@]*:[^/@]*@", value) or (
                    re.search(r"(?i)password|secret_key|token", env["name"])
                    and not value.startswith("/")  # a file path, e.g. *_PASSWORD_FILE
                )
                assert "value" not in env or not inlined, f"{where}: {env['name']} is inlined"


def test_long_running_containers_have_probes_and_kong_and_backend_spread(overlay):
    objects = rendered(overlay)
    for name, spec in pod_specs(objects).items():
        if name.startswith("Job/"):
            continue
        for container in spec["containers"]:
            assert "readinessProbe" in container and "livenessProbe" in container, name
    for name in ("kong", "backend"):
        spec = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        find(objects, "PodDisruptionBudget", name)


def kong_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (kong,) = find(objects, "Deployment", "kong")["spec"]["template"]["spec"]["containers"]
    return kong


def environment(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str | None]:
    """A container's variables as the kubelet sets them: its envFrom ConfigMaps, then its env
    (ConfigMap references resolved; anything else, a Secret or a field, as None)."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        env[var["name"]] = maps[ref["name"]][ref["key"]] if ref else var.get("value")
    return env


def kong_conf_of_the_pod(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The settings Kong reads: the kong-config ConfigMap's kong.conf under the container's
    KONG_* variables (Kong's conf loader gives the environment precedence)."""
    conf = parse_conf_text(configmap(objects, "kong-config")["data"]["kong.conf"])
    for name, value in environment(objects, kong_container(objects)).items():
        if name.startswith("KONG_") and value is not None:
            conf[name.removeprefix("KONG_").lower()] = value
    return conf


def test_kong_admin_api_is_not_exposed(overlay):
    objects = rendered(overlay)
    conf = kong_conf_of_the_pod(objects)
    # Every Admin API listener on loopback: no other pod, even one a NetworkPolicy lets in,
    # can POST /config.
    listeners = [listener.split()[0] for listener in conf["admin_listen"].split(",")]
    assert listeners and all(
        address.rsplit(":", 1)[0] in {"127.0.0.1", "[::1]"} for address in listeners
    ), listeners
    admin_ports = {int(address.rsplit(":", 1)[1]) for address in listeners}
    # No Kong Manager either: Kong 3.9 serves it on 0.0.0.0:8002 and :8445 unless it is
    # off (kong/templates/kong_defaults.lua admin_gui_listen).
    assert conf["admin_gui_listen"].strip() == "off"
    kong = kong_container(objects)
    assert not admin_ports & {p["containerPort"] for p in kong["ports"]}
    # Kong's own checks go to the Status API or the plugin servers' sockets, never the Admin
    # API: the probes need no Admin API listener they could reach.
    status_port = int(conf["status_listen"].rsplit(":", 1)[1])
    port_numbers = {p["name"]: p["containerPort"] for p in kong["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = kong[kind]
        if "httpGet" in probe:
            assert port_numbers.get(probe["httpGet"]["port"], probe["httpGet"]["port"]) == (
                status_port
            ), kind
        else:
            command = " ".join(probe["exec"]["command"])
            assert not any(str(port) in command for port in admin_ports), kind
    for service in (o for o in objects if o["kind"] == "Service"):
        for port in service["spec"].get("ports", []):
            assert not admin_ports & {port["port"], port.get("targetPort")}, service["metadata"][
                "name"
            ]


def test_secret_files_are_readable_by_the_pods_group_and_nobody_else(overlay):
    """Keys and certificates reach each process through its pod's fsGroup: the kubelet gives
    a Secret volume's files that group, and defaultMode grants it read and the world nothing.
    Kong's image runs as its `kong` user, whose uid the base image decides (Kong's
    build/package/postinstall.sh runs useradd without one), so the pod names its own uid and
    reads the keys through the group, never through world-readable files."""
    checked = 0
    for name, spec in pod_specs(rendered(overlay)).items():
        secrets = {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
        if not secrets:
            continue
        security = spec["securityContext"]
        assert isinstance(security.get("fsGroup"), int), f"{name}: no fsGroup"
        assert security["runAsUser"] != 0, name
        for volume, secret in secrets.items():
            modes = [secret.get("defaultMode")] + [
                i["mode"] for i in secret.get("items", []) if "mode" in i
            ]
            for mode in modes:
                # Without defaultMode the kubelet writes 0644: world-readable keys.
                assert mode is not None, f"{name} {volume}: no defaultMode"
                assert mode & 0o007 == 0, f"{name} {volume}: {mode:o} lets anyone read"
                assert mode & 0o040, f"{name} {volume}: {mode:o} hides it from the pod's group"
            checked += 1
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secrets:
                    assert mount.get("readOnly") is True, f"{name} {container['name']}"
    assert checked >= 5


# Kong's log levels, most verbose first (kong/templates/kong_defaults.lua log_level; nginx's).
LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")


def test_plugin_server_output_reaches_the_container_log(overlay):
    """Kong relays each line a plugin server prints into its error log at INFO
    (kong/runloop/plugin_servers/process.lua grab_logs): the pod's log level must keep INFO,
    and the error log must be the container's stderr, which the image's entrypoint links it
    to for `kong docker-start` (docker-kong's docker-entrypoint.sh)."""
    objects = rendered(overlay)
    conf = kong_conf_of_the_pod(objects)
    assert LOG_LEVELS.index(conf["log_level"]) <= LOG_LEVELS.index("info"), conf["log_level"]
    assert conf.get("proxy_error_log", "logs/error.log") == "logs/error.log"
    kong = kong_container(objects)
    assert "exec /docker-entrypoint.sh" in " ".join(kong["command"])
    assert kong["args"] == ["kong", "docker-start"]


# The Jaeger 1 collector's own protocols (Thrift over HTTP and UDP, gRPC model.proto): gone
# in Jaeger 2, which receives OTLP only (4317 gRPC, 4318 HTTP).
JAEGER_V1_PORTS = {14250, 14268, 5775, 6831, 6832}


def _ports(value: Any) -> set[int]:
    """Every `port`/`containerPort`/`targetPort` number anywhere in a manifest."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in {"port", "containerPort", "targetPort", "endPort"} and isinstance(item, int):
                found.add(item)
            found |= _ports(item)
    elif isinstance(value, list):
        for item in value:
            found |= _ports(item)
    return found


def test_traces_go_to_an_otlp_endpoint_as_in_compose(overlay):
    objects = rendered(overlay)
    telemetry = configmap(objects, "telemetry")["data"]
    compose_env = COMPOSE["services"]["kong"]["environment"]
    gateway = urlsplit(telemetry["EDGE_TRACE_OTLP_ENDPOINT"])
    compose_gateway = urlsplit(compose_env["EDGE_TRACE_OTLP_ENDPOINT"])
    # edge-trace posts to the full URL; OTLP/HTTP's traces path, on OTLP/HTTP's port.
    assert (gateway.scheme, gateway.port, gateway.path) == ("http", 4318, "/v1/traces")
    assert (gateway.port, gateway.path) == (compose_gateway.port, compose_gateway.path)
    # The SDK appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT (the OpenTelemetry
    # specification's OTLP exporter configuration).
    sdk = urlsplit(telemetry["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (sdk.scheme, sdk.port, sdk.path.rstrip("/")) == ("http", 4318, "")
    assert sdk.hostname == gateway.hostname
    assert not JAEGER_V1_PORTS & _ports(objects)


def _backend_probe_paths(container: dict[str, Any]) -> set[str]:
    """The paths backend/healthcheck.py GETs for each of the container's exec probes."""
    script = (ROOT / "backend/healthcheck.py").read_text()
    match = re.search(r'"HEALTHCHECK_PATH", "([^"]+)"', script)
    assert match, "backend/healthcheck.py no longer reads HEALTHCHECK_PATH with a default"
    paths = set()
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in container:
            command = container[kind]["exec"]["command"]
            assert "/app/healthcheck.py" in command, kind
            chosen = [a.split("=", 1)[1] for a in command if a.startswith("HEALTHCHECK_PATH=")]
            paths.add(chosen[0] if chosen else match.group(1))
    return paths


def test_backend_probes_and_scrapes_are_not_traced(overlay):
    """The kubelet calls the health endpoints and Prometheus the metrics every few seconds per
    pod: each call a trace would crowd the collector's bounded store (Jaeger 2's max_traces)
    out of the requests worth keeping. OTEL_PYTHON_DJANGO_EXCLUDED_URLS, parsed here by the
    instrumentation's own parser, leaves them out and keeps the API traced."""
    from opentelemetry.util.http import parse_excluded_urls

    objects = rendered(overlay)
    pod = find(objects, "Deployment", "backend")["spec"]["template"]
    backend = pod["spec"]["containers"][0]
    excluded = environment(objects, backend).get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS")
    assert excluded, "every probe of every backend pod becomes a trace"
    rules = parse_excluded_urls(excluded)
    paths = _backend_probe_paths(backend)
    assert len(paths) == 2
    # The middleware matches the absolute URL (request.build_absolute_uri("?")).
    for path in paths:
        assert rules.url_disabled(f"https://backend:8080{path}"), path
    annotations = pod["metadata"]["annotations"]
    scrape = (
        f"https://backend:{annotations['prometheus.io/port']}{annotations['prometheus.io/path']}"
    )
    assert rules.url_disabled(scrape), scrape
    for path in ("/api/auth/login", "/api/auth/profile", "/api/auth/token/refresh"):
        assert not rules.url_disabled(f"https://backend:8080{path}"), path


def test_migrations_run_as_a_job_that_the_backend_waits_for(overlay):
    objects = rendered(overlay)
    job = find(objects, "Job", "backend-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("backend", "outbox-relay"):
        spec = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        (wait,) = spec["initContainers"]
        assert "manage.py migrate --check" in " ".join(wait["command"]), name
    relay = find(objects, "Deployment", "outbox-relay")["spec"]["template"]["spec"]["containers"][0]
    assert relay["command"] == ["python", "manage.py", "relay_outbox"]


def test_backend_listeners_have_their_own_services(overlay):
    objects = rendered(overlay)
    backend = find(objects, "Deployment", "backend")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in backend["env"]}
    binds = {
        int(env[var].rsplit(":", 1)[1]): var
        for var in ("GUNICORN_BIND", "GUNICORN_INTERNAL_BIND", "GUNICORN_METRICS_BIND")
    }
    assert binds == {
        8080: "GUNICORN_BIND",
        8081: "GUNICORN_INTERNAL_BIND",
        9100: "GUNICORN_METRICS_BIND",
    }
    assert env["GUNICORN_CERT_REQS"] == "required"
    services = {
        name: find(objects, "Service", name)["spec"]["ports"]
        for name in ("backend", "backend-internal", "backend-metrics")
    }
    assert {name: [p["port"] for p in ports] for name, ports in services.items()} == {
        "backend": [8080],
        "backend-internal": [8081],
        "backend-metrics": [9100],
    }
    # Kong's service URL names the public Service.
    compose_kong_yml = yaml.safe_load((ROOT / "kong/kong.compose.yml").read_text())
    assert compose_kong_yml["services"][0]["url"] == "https://backend:8080"


# --- one source: kong.conf, kong.yml, images, alert rules ------------------------------------


def test_kong_configmap_is_the_repository_files(overlay):
    # The kustomization's copies (deploy/generate.py; tests/tooling checks they are current)
    # under a header, with the text of the files the compose stack uses.
    data = configmap(rendered(overlay), "kong-config")["data"]
    assert data["kong.conf"].endswith(KONG_CONF_TEXT)
    assert parse_conf_text(data["kong.conf"]) == KONG_CONF
    assert data["kong.yml"] == (ROOT / "kong/kong.compose.yml").read_text()


def test_kong_configmap_routes_are_kong_yml_routes(tmp_path, overlay, monkeypatch):
    subprocess.run(
        [
            str(ROOT / ".venv/bin/python"),
            str(ROOT / "scripts/dev_certs.py"),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    monkeypatch.setenv("EDGE_UPSTREAM_CLIENT_CERT", (tmp_path / "gateway.pem").read_text())
    monkeypatch.setenv("EDGE_UPSTREAM_CLIENT_KEY", (tmp_path / "gateway-key.pem").read_text())
    (tmp_path / "kong.yml").write_text(
        configmap(rendered(overlay), "kong-config")["data"]["kong.yml"]
    )
    plugins = KONG_CONF["plugins"].replace("bundled,", "prometheus,").split(",")
    deployed = load_declarative(tmp_path / "kong.yml", enabled_plugins=plugins)
    local = load_declarative(ROOT / "kong/kong.yml", enabled_plugins=plugins)
    assert [(r.name, r.paths) for r in deployed.routes] == [(r.name, r.paths) for r in local.routes]


def test_kong_container_matches_kong_conf(overlay):
    objects = rendered(overlay)
    pod = find(objects, "Deployment", "kong")["spec"]["template"]["spec"]
    kong = pod["containers"][0]
    env = {e["name"]: e for e in kong["env"]}
    assert {k for k in env if k.startswith("KONG_")} <= KONG_ENV_OVERRIDES
    assert env["KONG_DATABASE"]["value"] == "off"
    mounts = {m["mountPath"]: m for m in kong["volumeMounts"]}
    assert mounts["/etc/kong/kong.conf"]["subPath"] == "kong.conf"
    declarative = Path(env["KONG_DECLARATIVE_CONFIG"]["value"])
    assert str(declarative.parent) in mounts
    # Kong's prefix is writable (an emptyDir), everything else read-only.
    assert KONG_CONF["prefix"].rstrip("/") in mounts
    # Every env-vault reference of kong.compose.yml is provided.
    refs = set(
        re.findall(r"\{vault://env/([a-z0-9-]+)\}", (ROOT / "kong/kong.compose.yml").read_text())
    )
    entrypoint = " ".join(kong["command"])
    for ref in refs:
        var = ref.upper().replace("-", "_")
        assert var in env or f" {var}=" in f" {entrypoint}", var
    # Readiness waits for every plugin server socket of kong.conf.
    names = [n.strip() for n in KONG_CONF["pluginserver_names"].split(",")]
    sockets = [KONG_CONF[f"pluginserver_{n.replace('-', '_')}_socket"] for n in names]
    assert kong["readinessProbe"]["exec"]["command"] == ["edge-plugins-ready", *sockets]
    # Liveness on Kong's Status API (kong.conf status_listen).
    status_port = int(KONG_CONF["status_listen"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in kong["ports"]}
    assert kong["livenessProbe"]["httpGet"] == {"path": "/status", "port": "status"}
    assert ports["status"] == status_port
    # The plugin servers' metrics ports (kong.conf --metrics-port) are the ports Prometheus gets.
    metrics_ports = {
        int(m)
        for n in names
        for m in re.findall(
            r"--metrics-port (\d+)", KONG_CONF[f"pluginserver_{n.replace('-', '_')}_start_cmd"]
        )
    }
    service_ports = {p["port"] for p in find(objects, "Service", "kong-metrics")["spec"]["ports"]}
    assert service_ports == metrics_ports | {status_port}
    assert set(ports.values()) == metrics_ports | {status_port, 8000}


def test_images_are_the_compose_files(overlay):
    compose_images = {s["image"] for s in COMPOSE["services"].values() if "image" in s}
    for name, spec in pod_specs(rendered(overlay)).items():
        for container in containers(spec):
            assert container["image"] in compose_images, f"{name}: {container['image']}"
    objects = rendered(overlay)
    assert {
        c["image"]
        for c in containers(find(objects, "Deployment", "kong")["spec"]["template"]["spec"])
    } == {COMPOSE["services"]["kong"]["image"]}
    assert (
        find(objects, "Deployment", "backend")["spec"]["template"]["spec"]["containers"][0]["image"]
        == (COMPOSE["services"]["backend"]["image"])
    )


def test_prometheus_rule_is_generated_from_observability():
    committed = ROOT / "deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml"
    assert committed.read_text() == _generator().render(), "stale: run make k8s-rules"
    rule = find(rendered("prod"), "PrometheusRule", "api-edge-alerts")
    alerts = [r.get("alert", r.get("record")) for g in rule["spec"]["groups"] for r in g["rules"]]
    sources = [
        r.get("alert", r.get("record"))
        for path in sorted((ROOT / "observability/prometheus/rules").glob("*.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
    ]
    assert alerts == sources and alerts


def test_prometheus_rule_passes_promtool(tmp_path):
    promtool = tool("promtool")
    rule = find(rendered("prod"), "PrometheusRule", "api-edge-alerts")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_monitors_give_the_job_names_of_prometheus_yml():
    objects = rendered("prod")
    jobs = {
        j["job_name"]
        for j in yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    seen = set()
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            o
            for o in objects
            if o["kind"] == "Service"
            and selector.items() <= (o["metadata"].get("labels") or {}).items()
        ]
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            (job,) = [
                r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"
            ]
            seen.add(job)
    assert seen == {"kong", "edge-trace", "edge-jwt", "edge-rate-limit", "auth-backend"}
    assert seen <= jobs


def test_every_referenced_secret_is_documented(overlay):
    guide = (ROOT / "docs/scaling.md").read_text()
    referenced: dict[str, set[str]] = {}
    for spec in pod_specs(rendered(overlay)).values():
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                referenced.setdefault(volume["secret"]["secretName"], set())
        for container in containers(spec):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.setdefault(ref["name"], set()).add(ref["key"])
    assert referenced
    for name, keys in referenced.items():
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row, f"docs/scaling.md has no row for the Secret {name}"
        for key in keys:
            assert f"`{key}`" in row, f"{name}: key {key} undocumented"


# --- network policy: the connectivity network-config-analyzer computes -------------------------

# Peers outside the namespace, labelled as the policies expect (and one of each kind that
# is not): Prometheus and an OTLP collector in `monitoring`, an internal caller and an
# unlabelled pod in a namespace allowed to call the internal API, an ingress controller, and
# a stray pod inside api-edge itself.
PEERS = """
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {kubernetes.io/metadata.name: monitoring}}
---
apiVersion: v1
kind: Pod
metadata: {name: prometheus, namespace: monitoring, labels: {app.kubernetes.io/name: prometheus}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: otel-collector
  namespace: monitoring
  labels: {app.kubernetes.io/name: opentelemetry-collector}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Namespace
metadata:
  name: orders
  labels: {kubernetes.io/metadata.name: orders, api-edge/auth-internal: allowed}
---
apiVersion: v1
kind: Pod
metadata: {name: orders-api, namespace: orders, labels: {api-edge/auth-internal: client}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: orders-worker, namespace: orders, labels: {app: orders-worker}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx, labels: {kubernetes.io/metadata.name: ingress-nginx}}
---
apiVersion: v1
kind: Pod
metadata: {name: controller, namespace: ingress-nginx, labels: {app: ingress-nginx}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: stray, namespace: api-edge, labels: {app: debug}}
spec: {containers: [{name: c, image: x}]}
"""

INTERNET = "0.0.0.0-255.255.255.255"
POSTGRES_CIDR = "192.0.2.0-192.0.2.15"  # prod overlay's placeholder (RFC 5737)
REDIS_CIDR = "198.51.100.0-198.51.100.15"
DNS = "kube-system/kube-dns-livesim[Pod]"  # the analyzer's stand-in for kube-dns
OTLP = "monitoring/otel-collector[Pod]"
KONG = "api-edge/kong[Deployment]"
BACKEND = "api-edge/backend[Deployment]"
MIGRATE = "api-edge/backend-migrate[Job]"
RELAY = "api-edge/outbox-relay[Deployment]"
BACKEND_PODS = (BACKEND, MIGRATE, RELAY)

# Every allowed connection from or to a pod of api-edge in the prod overlay (item 3 of the
# deployment's network design, docs/scaling.md): exactly this, nothing more.
PROD_TABLE = {
    (INTERNET, KONG): "TCP 8000",
    ("ingress-nginx/controller[Pod]", KONG): "TCP 8000",
    (KONG, BACKEND): "TCP 8080",
    (KONG, REDIS_CIDR): "TCP 6379",
    (KONG, OTLP): "TCP 4317-4318",
    (KONG, DNS): "TCP,UDP 53",
    ("orders/orders-api[Pod]", BACKEND): "TCP 8081",
    ("monitoring/prometheus[Pod]", KONG): "TCP 8100,9101-9103",
    ("monitoring/prometheus[Pod]", BACKEND): "TCP 9100",
    **{(pod, POSTGRES_CIDR): "TCP 5432" for pod in BACKEND_PODS},
    **{(pod, REDIS_CIDR): "TCP 6379" for pod in BACKEND_PODS},
    **{(pod, OTLP): "TCP 4317-4318" for pod in BACKEND_PODS},
    **{(pod, DNS): "TCP,UDP 53" for pod in BACKEND_PODS},
    ("api-edge/stray[Pod]", DNS): "TCP,UDP 53",
}


def _connection(text: str) -> str:
    """'{protocols:TCP, UDP,dst_ports:53}' -> 'TCP,UDP 53'; 'All connections' unchanged."""
    match = re.fullmatch(r"\{protocols:([A-Z, ]+),dst_ports:([\d,-]+)\}", text)
    if not match:
        return text
    return f"{match.group(1).replace(' ', '')} {match.group(2)}"


def connectivity(overlay: str, tmp_path: Path) -> dict[tuple[str, str], str]:
    """(source, destination) -> allowed connections, as network-config-analyzer computes them
    from the overlay's NetworkPolicies over its workloads and PEERS."""
    nca = tool_in_venv("kube", "nca")
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(rendered_text(overlay))
    peers = tmp_path / "peers.yaml"
    peers.write_text(PEERS)
    result = subprocess.run(
        [
            nca,
            "--connectivity",
            str(manifests),
            "--resource_list",
            str(manifests),
            "--resource_list",
            str(peers),
            "--output_format",
            "txt_no_fw_rules",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(\S+) => (\S+) : (.+)", line.strip())
        if match:
            table[(match.group(1), match.group(2))] = _connection(match.group(3))
    assert table, result.stdout
    return table


def test_prod_network_policies_allow_exactly_the_table(tmp_path):
    table = connectivity("prod", tmp_path)
    ours = {
        pair: conn for pair, conn in table.items() if any(p.startswith("api-edge/") for p in pair)
    }
    assert ours == PROD_TABLE
    # The denials the design promises, spelled out.
    assert (KONG, BACKEND) in table and table[(KONG, BACKEND)] == "TCP 8080"  # not 8081, not 9100
    assert (INTERNET, BACKEND) not in table
    assert ("orders/orders-worker[Pod]", BACKEND) not in table  # not labelled
    assert ("monitoring/otel-collector[Pod]", KONG) not in table
    assert {src for (src, dst) in ours if dst == POSTGRES_CIDR} == set(BACKEND_PODS)
    assert ("api-edge/stray[Pod]", BACKEND) not in table and (
        "api-edge/stray[Pod]",
        KONG,
    ) not in table


def test_dev_postgres_is_reached_by_the_backend_only(tmp_path):
    table = connectivity("dev", tmp_path)
    postgres = "api-edge/postgres[Deployment]"
    redis = "api-edge/redis[Deployment]"
    assert {src for (src, dst) in table if dst == postgres} == set(BACKEND_PODS)
    assert {conn for (src, dst), conn in table.items() if dst == postgres} == {"TCP 5432"}
    assert {src for (src, dst) in table if dst == redis} == {KONG, *BACKEND_PODS}
    assert (KONG, BACKEND) in table and (INTERNET, BACKEND) not in table
