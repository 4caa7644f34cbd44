"""``metrics_server.children``: a family's labelled children, each looked up once."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from edge_plugins.metrics_server import children


def test_each_child_is_looked_up_once_and_counts_in_its_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    family = Counter("decisions_total", "d", ["route", "outcome"], registry=registry)
    lookups: list[tuple[Any, ...]] = []
    labels = family.labels

    def counted(*values: str) -> Any:
        lookups.append(values)
        return labels(*values)

    monkeypatch.setattr(family, "labels", counted)
    child = children(family)
    for _ in range(3):
        child("login", "allowed").inc()
    child("login", "rejected").inc()
    assert lookups == [("login", "allowed"), ("login", "rejected")]
    assert child("login", "allowed") is labels("login", "allowed")
    sample = {"route": "login", "outcome": "allowed"}
    assert registry.get_sample_value("decisions_total", sample) == 3
