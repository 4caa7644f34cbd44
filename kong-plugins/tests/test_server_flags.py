"""The plugin servers' own command-line flags (edge_plugins.server), taken before kong-pdk's.

Kong gives a plugin server no environment but ``TZ`` (kong/runloop/plugin_servers/
process.lua), so its settings are flags on the start command in kong.conf.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from edge_plugins import metrics_server
from edge_plugins.server import OwnFlags, _take_own_flags

KONG_PDK_ARGS = ["-p", "/usr/local/kong", "--socket-name", "x.socket", "-g"]


def _module(port: int = 9103) -> ModuleType:
    module = ModuleType("edge_example")
    module.DEFAULT_METRICS_PORT = port  # type: ignore[attr-defined]
    return module


def test_defaults_are_the_modules_port_on_loopback() -> None:
    argv, flags = _take_own_flags(_module(9103), ["edge-x", *KONG_PDK_ARGS])
    assert flags == OwnFlags(metrics_port=9103, metrics_address="127.0.0.1")
    assert argv == ["edge-x", *KONG_PDK_ARGS]


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("0.0.0.0", "0.0.0.0"),
        ("10.1.2.3", "10.1.2.3"),
        ("::", "::"),
        ("0:0:0:0:0:0:0:1", "::1"),  # normalised: the form the listener shows
    ],
)
def test_an_ip_address_is_taken_and_removed_from_kong_pdks_arguments(
    given: str, address: str
) -> None:
    argv, flags = _take_own_flags(
        _module(),
        [
            "edge-x",
            "-p",
            "/usr/local/kong",
            "--metrics-port",
            "9200",
            "--metrics-address",
            given,
            "-g",
        ],
    )
    assert flags == OwnFlags(metrics_port=9200, metrics_address=address)
    assert argv == ["edge-x", "-p", "/usr/local/kong", "-g"]


@pytest.mark.parametrize("bad", ["localhost", "0.0.0.0:9101", "256.0.0.1", "", "10.0.0.0/8"])
def test_a_bad_address_is_a_startup_error_naming_the_flag(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _take_own_flags(_module(), ["edge-x", "--metrics-address", bad, *KONG_PDK_ARGS])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "argument --metrics-address: not an IP address" in error and repr(bad) in error


def test_the_metrics_endpoint_binds_the_given_address(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[int, str]] = []

    def start_http_server(port: int, addr: str, **kwargs: Any) -> None:
        started.append((port, addr))

    monkeypatch.setattr(metrics_server, "start_http_server", start_http_server)
    monkeypatch.setattr(metrics_server, "_server_port", None)  # as in a fresh process
    monkeypatch.setattr(metrics_server, "_server_address", None)
    metrics_server.serve_metrics(9200, "0.0.0.0")
    metrics_server.serve_metrics(9200, "0.0.0.0")  # once per process
    assert started == [(9200, "0.0.0.0")]
    monkeypatch.setattr(metrics_server, "_server_port", None)
    metrics_server.serve_metrics(9201)
    assert started[-1] == (9201, "127.0.0.1"), "loopback unless told otherwise"
