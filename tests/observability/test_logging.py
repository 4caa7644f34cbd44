"""Log aggregation config: Loki, Alloy and Grafana's links between traces and logs.

Neither Loki nor Alloy runs here. What can be checked is: the files parse and hold what the
stack relies on (pinned images, retention, labels service and level only); Grafana's derived
field finds the trace id in lines our services really print (the backend's JSON formatter
inside a real OpenTelemetry span, and its gunicorn access formatter); and the Alloy pipeline,
re-implemented stage by stage below after Alloy's documented semantics, read from
config.alloy so the two cannot drift apart silently, gives those lines the labels service and
level only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider

from auth_backend.core.logs import GunicornJsonFormatter, JsonFormatter
from edge_plugins.logs import JsonFormatter as PluginJsonFormatter
from edge_plugins.logs import bind_headers
from kong_harness.access_log import AccessLog, Entry
from kong_harness.conf import parse_conf_text
from tests.observability.support import (
    GRAFANA,
    OBS,
    ROOT,
    defined_metric_names,
    metric_names,
    run,
    tool,
)
from tests.support.harness import request_context

ALLOY = OBS / "alloy" / "config.alloy"
ALLOY_K8S = OBS / "alloy" / "config.k8s.alloy"
LOGGING_COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "logging"
LOKI = OBS / "loki" / "loki.yml"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _datasources() -> dict[str, dict[str, Any]]:
    path = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
    return {ds["uid"]: ds for ds in yaml.safe_load(path.read_text())["datasources"]}


def _unescape(value: str) -> str:
    """Grafana provisioning: ``$$`` is a literal ``$``."""
    return value.replace("$$", "$")


# --- lines our services print ---------------------------------------------------------------


def _backend_lines() -> dict[str, tuple[str, str | None]]:
    """name -> (a line as the backend prints it, the trace id it must lead to)."""
    tracer = TracerProvider().get_tracer("test")
    app = JsonFormatter()
    lines: dict[str, tuple[str, str | None]] = {}
    with tracer.start_as_current_span("request") as span:
        record = logging.LogRecord(
            "auth_backend.accounts", logging.WARNING, __file__, 1, "login refused", None, None
        )
        trace_id = f"{span.get_span_context().trace_id:032x}"
        lines["in a span"] = (app.format(record), trace_id)
    outside = logging.LogRecord(
        "auth_backend.events", logging.INFO, __file__, 1, "relay idle", None, None
    )
    lines["outside any span"] = (app.format(outside), None)
    access = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(h)s", None, None)
    access.args = {
        "h": "10.0.0.7",
        "m": "GET",
        "U": "/api/auth/profile",
        "s": "200",
        "M": "12",
        "{traceparent}i": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "{x-request-id}o": "3f0c1d2e-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
    }
    lines["gunicorn access"] = (
        GunicornJsonFormatter().format(access),
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )
    return lines


def _plugin_lines() -> dict[str, tuple[str, str | None]]:
    """name -> (a line as a plugin server prints it, the trace id it must lead to): the
    formatter edge_plugins.server installs, inside an event that bound its ids as edge-jwt
    does from the headers edge-trace set, and outside any event (start-up, key refresh)."""
    headers = {
        "x-request-id": ["3f0c1d2e-6a7b-4c8d-9e0f-1a2b3c4d5e6f"],
        "traceparent": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    }
    formatter = PluginJsonFormatter("edge-jwt")
    record = logging.LogRecord(
        "edge_plugins.guard", logging.ERROR, __file__, 1, "edge-jwt failed", None, None
    )

    def in_event() -> str:
        bind_headers(headers)
        return formatter.format(record)

    idle = logging.LogRecord(
        "edge_plugins.jwt.keys", logging.INFO, __file__, 1, "keys refreshed", None, None
    )
    return {
        "plugin server in an event": (
            contextvars.Context().run(in_event),
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        "plugin server outside any event": (formatter.format(idle), None),
    }


def _kong_lines() -> dict[str, tuple[str, str | None]]:
    """Kong's proxy access log as kong/kong.conf formats it (the harness's rendering of
    the same format: kong/harness/tests/test_access_log.py)."""
    access_log = AccessLog.from_conf(parse_conf_text((ROOT / "kong/kong.conf").read_text()))
    assert access_log is not None
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [("traceparent", traceparent), ("X-Request-ID", "3f0c1d2e-6a7b-4c8d")]
    traced = request_context(headers=headers, raw_path="/api/auth/profile")
    untraced = request_context(raw_path="/nowhere")
    return {
        "kong access log": (
            access_log.line(Entry(traced, 200, 12, traced.start_time + 0.01)),
            "0af7651916cd43dd8448eb211c80319c",
        ),
        "kong access log, no trace": (
            access_log.line(Entry(untraced, 404, 48, untraced.start_time)),
            None,
        ),
    }


LINES = {**_backend_lines(), **_plugin_lines(), **_kong_lines()}


# --- Grafana --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LINES))
def test_the_derived_field_finds_the_trace_id_of_real_lines(name: str) -> None:
    line, trace_id = LINES[name]
    (field,) = _datasources()["loki"]["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == "jaeger" and _unescape(field["url"]) == "${__value.raw}"
    match = re.search(field["matcherRegex"], line)
    assert (match.group(1) if match else None) == trace_id, line


def test_the_derived_field_does_not_take_a_request_id() -> None:
    (field,) = _datasources()["loki"]["jsonData"]["derivedFields"]
    line = json.dumps({"message": "x", "request_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    assert re.search(field["matcherRegex"], line) is None


def test_traces_open_their_logs_and_their_metrics(tmp_path: Path) -> None:
    datasources = _datasources()
    assert {uid: ds["type"] for uid, ds in datasources.items()} == {
        "prometheus": "prometheus",
        "jaeger": "jaeger",
        "loki": "loki",
    }
    jaeger = datasources["jaeger"]["jsonData"]
    logs = jaeger["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki" and logs["customQuery"] is True
    # labels are service and level only: the trace id is searched in the line
    assert _unescape(logs["query"]) == '{service=~".+"} |= "${__trace.traceId}"'
    metrics = jaeger["tracesToMetrics"]
    assert metrics["datasourceUid"] == "prometheus"
    defined = defined_metric_names()
    rules = [
        {"record": f"trace_to_metrics_{i}", "expr": q["query"]}
        for i, q in enumerate(metrics["queries"])
    ]
    for rule in rules:
        assert metric_names(rule["expr"]) <= defined, rule
    path = tmp_path / "trace-to-metrics.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Loki and compose -----------------------------------------------------------------------


def test_loki_keeps_a_week_with_few_labels() -> None:
    config = yaml.safe_load(LOKI.read_text())
    assert config["limits_config"]["retention_period"] == "168h"
    assert config["compactor"]["retention_enabled"] is True
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert config["limits_config"]["max_label_names_per_series"] <= 4


def test_compose_runs_pinned_loki_and_alloy_wired_to_the_configs() -> None:
    services = COMPOSE["services"]
    for name, image in (("loki", "grafana/loki"), ("alloy", "grafana/alloy")):
        repository, _, tag = services[name]["image"].partition(":")
        assert repository == image and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), services[name]
    assert "./observability/loki/loki.yml:/etc/loki/loki.yml:ro" in services["loki"]["volumes"]
    assert services["loki"]["command"] == ["-config.file=/etc/loki/loki.yml"]
    alloy = services["alloy"]
    assert "./observability/alloy/config.alloy:/etc/alloy/config.alloy:ro" in alloy["volumes"]
    # the engine's API socket (Docker's by default, podman's through DOCKER_SOCKET), read-only
    assert "${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro" in alloy["volumes"]
    assert alloy["command"][-1] == "/etc/alloy/config.alloy"
    assert "loki" in services["grafana"]["depends_on"]
    assert "http://loki:3100/loki/api/v1/push" in ALLOY.read_text()


# --- the Alloy pipeline ---------------------------------------------------------------------


def _stages(config: str) -> list[tuple[str, str]]:
    """(stage name, body) of the loki.process block's stages, in order."""
    block = re.search(r'loki\.process "json_lines" \{(.*?)\n\}', config, re.DOTALL)
    assert block
    return re.findall(r"\n  stage\.(\w+) \{(.*?)\n  \}", block.group(1), re.DOTALL)


def _map(body: str, name: str) -> dict[str, str]:
    inner = re.search(name + r" = \{(.*?)\}", body, re.DOTALL)
    assert inner, body
    return dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', inner.group(1)))


def _pipeline(path: Path = ALLOY) -> list[tuple[str, Any]]:
    """config.alloy's stages with their parameters, refusing any stage this file does not
    implement (so a new stage in the config fails here until it is re-implemented)."""
    config = path.read_text()
    source = {
        ALLOY: "__meta_docker_container_label_com_docker_compose_service",
        ALLOY_K8S: "__meta_kubernetes_pod_label_app_kubernetes_io_name",
    }[path]
    relabel = re.search(r'discovery\.relabel "\w+" \{(.*?)\n\}', config, re.DOTALL)
    assert relabel and re.search(
        rf'source_labels = \["{source}"\]\s+target_label\s+= "service"', relabel.group(1)
    )
    out: list[tuple[str, Any]] = []
    for name, body in _stages(config):
        if name == "regex":
            expression = re.search(r"expression = `(.*)`", body)
            assert expression
            out.append(("regex", re.compile(expression.group(1))))
        elif name == "json":
            source = re.search(r'source\s*= "(\w+)"', body)
            out.append(("json", (source.group(1) if source else None, _map(body, "expressions"))))
        elif name == "template":
            source = re.search(r'source\s*= "(\w+)"', body)
            template = re.search(r'template = "(.*)"', body)
            assert source and template
            out.append(("template", (source.group(1), template.group(1))))
        elif name == "labels":
            out.append(("labels", _map(body, "values")))
        elif name == "label_keep":
            values = re.search(r"values = \[(.*?)\]", body)
            assert values
            out.append(("label_keep", re.findall(r'"(\w+)"', values.group(1))))
        else:
            raise AssertionError(f"stage.{name} is not re-implemented in this test")
    return out


_TEMPLATES = {"{{ ToLower .Value }}": str.lower}


def _process(line: str, compose_service: str) -> dict[str, str]:
    """The labels Alloy gives ``line`` from the container of ``compose_service``."""
    labels = {"service": compose_service, "container": f"api-edge-{compose_service}-1"}
    extracted: dict[str, Any] = {}
    for stage, params in _pipeline():
        if stage == "regex":
            # stage.regex: RE2 named groups of a match into the extracted map (none: nothing)
            match = params.search(line)
            if match:
                extracted.update({k: v for k, v in match.groupdict().items() if v is not None})
        elif stage == "json":
            # stage.json: JMESPath expressions over the parsed source (the line when unset; a
            # source missing from the extracted map skips the stage); a value that is not a
            # JSON object is passed on unchanged (drop_malformed defaults to false)
            source, expressions = params
            if source is not None and source not in extracted:
                continue
            try:
                document = json.loads(line if source is None else extracted[source])
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            for key, path in expressions.items():
                if path in document and document[path] is not None:
                    extracted[key] = str(document[path])
        elif stage == "template":
            # stage.template: only for a value present in the extracted map
            source, template = params
            if source in extracted:
                extracted[source] = _TEMPLATES[template](extracted[source])
        elif stage == "labels":
            # stage.labels: {label: source}, an empty source names the same key; a value
            # missing from the extracted map leaves the label as it was
            for label, source in params.items():
                value = extracted.get(source or label)
                if value is not None:
                    labels[label] = value
        elif stage == "label_keep":
            labels = {k: v for k, v in labels.items() if k in params}
    return labels


def test_the_pipeline_is_the_one_reimplemented_here() -> None:
    assert [stage for stage, _ in _pipeline()] == [
        "regex",
        "json",
        "template",
        "labels",
        "label_keep",
    ]
    # Kubernetes runs the same stages (only the discovery differs)
    assert _pipeline(ALLOY_K8S) == _pipeline()


@pytest.mark.parametrize("name", sorted(LINES))
def test_lines_are_labelled_by_service_and_level_only(name: str) -> None:
    line, _ = LINES[name]
    document = json.loads(line)
    assert _process(line, "backend") == {
        "service": document["service"],  # the line's own, not the compose service name
        "level": document["level"].lower(),
    }
    assert document["service"] in ("auth-backend", "edge-jwt", "kong")


def test_a_plugin_line_as_kong_relays_it_keeps_its_trace_link() -> None:
    """Kong writes a plugin server's output into its error log at INFO, behind nginx's
    prefix and ``[name:pid]`` (kong/runloop/plugin_servers/process.lua ``grab_logs``):
    Alloy's regex stage takes the JSON part, so the line is labelled by the plugin's own
    service and level, not as Kong's, and Grafana's derived field still opens its trace."""
    line, trace_id = LINES["plugin server in an event"]
    relayed = f"2026/12/07 13:00:00 [info] 1234#0: [edge-jwt:4567] {line}"
    assert _process(relayed, "kong") == {"service": "edge-jwt", "level": "error"}
    in_timer = f"2026/12/07 13:00:00 [info] 1234#0: *7 [edge-jwt:4567] {line}"
    assert _process(in_timer, "kong") == {"service": "edge-jwt", "level": "error"}
    (field,) = _datasources()["loki"]["jsonData"]["derivedFields"]
    match = re.search(field["matcherRegex"], relayed)
    assert match is not None and match.group(1) == trace_id


def test_a_line_that_is_not_json_keeps_its_compose_service() -> None:
    line = '2026/12/07 13:00:00 [notice] 1#0: using the "epoll" event method'  # nginx's log
    assert _process(line, "kong") == {"service": "kong"}


# --- the Kubernetes logging component -------------------------------------------------------


def test_the_kubernetes_logging_component(tmp_path: Path) -> None:
    """Rendered into a namespace as an overlay would: Alloy as a DaemonSet reading this
    namespace's pods (a Role, no hostPath), Loki as a StatefulSet, both with the compose
    stack's images, and the repository's config files as their ConfigMaps (generated copies
    inside the component: stock kustomize loads no file outside it)."""
    kubectl = tool("kubectl")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "api-edge",
                "components": [os.path.relpath(LOGGING_COMPONENT, tmp_path)],
            }
        )
    )
    result = run(kubectl, "kustomize", tmp_path)
    assert result.returncode == 0, result.stderr
    objects = {}
    for o in yaml.safe_load_all(result.stdout):
        name = o["metadata"]["name"]
        # a generated ConfigMap's name ends in its content hash
        objects[(o["kind"], name.rsplit("-", 1)[0] if o["kind"] == "ConfigMap" else name)] = o
    assert set(objects) == {
        ("ServiceAccount", "alloy"),
        ("Role", "alloy"),
        ("RoleBinding", "alloy"),
        ("DaemonSet", "alloy"),
        ("Service", "loki"),
        ("StatefulSet", "loki"),
        ("ConfigMap", "alloy-config"),
        ("ConfigMap", "loki-config"),
    }
    assert all(o["metadata"].get("namespace") == "api-edge" for o in objects.values())
    assert objects[("ConfigMap", "loki-config")]["data"]["loki.yml"].endswith(LOKI.read_text())
    alloy = objects[("ConfigMap", "alloy-config")]["data"]["config.alloy"]
    assert alloy.endswith(ALLOY_K8S.read_text())
    services = COMPOSE["services"]
    for kind, name in (("DaemonSet", "alloy"), ("StatefulSet", "loki")):
        pod = objects[(kind, name)]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == services[name]["image"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert not any("hostPath" in volume for volume in pod["volumes"])
    rules = objects[("Role", "alloy")]["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}
    ]
