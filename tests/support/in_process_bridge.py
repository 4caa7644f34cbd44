"""Driving edge_plugins.pdk_bridge in process, without a socket: the test's greenlet plays
Kong's connection (an ``Answerer``), and each call returns what the bridge answered."""

from __future__ import annotations

from typing import Any

from edge_plugins.pdk_bridge import PluginBridge


class Answers:
    """Kong's connection, recording each ``[1, msgid, error, result]`` the bridge sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str | None, Any]] = []

    def answer(self, msgid: int, error: str | None, result: Any) -> None:
        self.sent.append((msgid, error, result))

    def last(self) -> tuple[str | None, Any]:
        _msgid, error, result = self.sent[-1]
        return error, result


def handle_event(bridge: PluginBridge, iid: int, phase: str = "access") -> tuple[str | None, Any]:
    """``plugin.HandleEvent``: (error, result) as answered before the worker parked."""
    answers = Answers()
    bridge.handle_event(answers, 1, {"InstanceId": iid, "EventName": phase})
    return answers.last()


def step(bridge: PluginBridge, event_id: int, data: Any) -> tuple[str | None, Any]:
    """``plugin.Step`` with Kong's answer ``data`` to the event's PDK call."""
    answers = Answers()
    bridge.step(answers, 2, {"EventId": event_id, "Data": data})
    return answers.last()
