"""What Kong reads from a shipped plugin server's ``--dump`` (process.lua
``query_external_plugin_info``, as the harness reads it): the same on both bridges, and
edge-trace's log phase only with ``--export-spans``."""

from __future__ import annotations

import subprocess

import pytest

from kong_harness.conf import PluginServerDef
from kong_harness.plugin_servers import query_plugin_info
from tests.support.harness import BIN_DIR

SHIPPED = ("edge-trace", "edge-jwt", "edge-rate-limit")


def _dump(command: str) -> bytes:
    return subprocess.run(command, shell=True, capture_output=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("name", SHIPPED)
def test_dump_is_kong_pdks_byte_for_byte(name: str) -> None:
    program = BIN_DIR / name
    assert _dump(f"{program} --dump") == _dump(f"{program} --kong-pdk-bridge --dump")


def _phases(query_command: str) -> tuple[str, ...]:
    server = PluginServerDef("edge-trace", "/nowhere.socket", None, query_command)
    return query_plugin_info(server).phases


def test_edge_trace_declares_its_log_phase_only_when_it_exports_spans() -> None:
    program = BIN_DIR / "edge-trace"
    assert _phases(f"{program} --dump") == ("access",)
    assert _phases(f"{program} --export-spans --dump") == ("log", "access")
    assert _phases(f"{program} --export-spans --kong-pdk-bridge --dump") == ("log", "access")


def test_a_server_without_export_spans_says_a_configured_endpoint_exports_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge_plugins import edge_trace

    argv = ["edge-trace", "--dump"]
    plugin = edge_trace.served_plugin(argv)
    assert plugin is edge_trace.AccessOnlyPlugin and argv == ["edge-trace", "--dump"]
    instance = plugin({"otlp_endpoint": "http://127.0.0.1:4318/v1/traces"})
    assert instance.exporter is None
    assert "--export-spans" in caplog.text
    exporting = ["edge-trace", "--export-spans", "-p", "/x"]
    assert edge_trace.served_plugin(exporting) is edge_trace.Plugin
    assert exporting == ["edge-trace", "-p", "/x"]
