"""The ``kong`` object of edge_plugins.pdk_bridge against every PDK method kong-pdk declares
(kong_pdk/pdk/kong/*.py, generated from Kong's PDK): each one reaches Kong as the same
message kong-pdk's own ``kong`` object sends, with the same answer back to the plugin."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from kong_pdk.pdk import Kong
from kong_pdk.pdk.kong import kong as declared_kong

from edge_plugins.pdk_bridge import PluginBridge
from tests.support.in_process_bridge import handle_event, step


def declared_methods(node: type = declared_kong, path: str = "kong") -> Iterator[str]:
    """Dotted paths of the methods of kong-pdk's PDK tree."""
    for name, value in vars(node).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(value):
            yield from declared_methods(value, f"{path}.{name}")
        elif isinstance(value, staticmethod) or inspect.isfunction(value):
            yield f"{path}.{name}"


METHODS = sorted(declared_methods())
ARGS = ("text", 7, None, {"k": ["v"]})


def test_the_walk_finds_kong_pdks_tree() -> None:
    assert len(METHODS) > 100
    for method in ("kong.request.get_header", "kong.ctx.shared.get", "kong.response.exit"):
        assert method in METHODS


def _resolve(kong: Any, method: str) -> Any:
    target = kong
    for part in method.split(".")[1:]:
        target = getattr(target, part)
    return target


class _Channel:
    """kong-pdk's side of a gevent Channel in threads of one: records what is put."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def put(self, message: Any) -> None:
        self.sent.append(message)

    def get(self) -> tuple[Any, None]:
        return "answer", None


def kong_pdk_message(method: str) -> tuple[Any, Any]:
    channel = _Channel()
    result = _resolve(Kong(channel, lua_style=False).kong, method)(*ARGS)
    return channel.sent, result


class _Plugin:
    method = ""
    result: Any = None

    def __init__(self, config: Any) -> None:
        pass

    def access(self, kong: Any) -> None:
        _Plugin.result = _resolve(kong, _Plugin.method)(*ARGS)


@pytest.fixture(scope="module")
def bridge() -> PluginBridge:
    bridge = PluginBridge("walk", _Plugin, hub=gevent.get_hub())
    bridge.start_instance({"Name": "walk", "Config": "{}"})
    return bridge


def bridge_message(bridge: PluginBridge, method: str) -> tuple[Any, Any]:
    _Plugin.method = method
    iid = next(iter(bridge.instances))
    error, answer = handle_event(bridge, iid)
    assert error is None
    sent = [answer["Data"]]
    if method not in ("kong.response.exit", "kong.response.error"):
        assert step(bridge, answer["EventId"], "answer") == (
            None,
            {"Data": "ret", "EventId": answer["EventId"]},
        )
    return sent, _Plugin.result


@pytest.mark.parametrize("method", METHODS)
def test_every_declared_method_sends_what_kong_pdk_sends(bridge: PluginBridge, method: str) -> None:
    assert bridge_message(bridge, method) == kong_pdk_message(method)
