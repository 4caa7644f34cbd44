"""Exemplars on the plugin servers' latency histograms: the sampled trace of the request,
served in the OpenMetrics exposition (the one Prometheus asks for with exemplar storage)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from edge_plugins.exemplars import trace_exemplar
from edge_plugins.jwt import metrics

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_sampled_trace_of_the_request() -> None:
    assert trace_exemplar({"traceparent": [f"00-{TRACE}-00f067aa0ba902b7-01"]}) == {
        "trace_id": TRACE
    }
    assert trace_exemplar({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) == {"trace_id": TRACE}


def test_no_exemplar_without_one_valid_sampled_traceparent() -> None:
    assert trace_exemplar({}) is None
    assert trace_exemplar({"traceparent": [f"00-{TRACE}-00f067aa0ba902b7-00"]}) is None  # unsampled
    assert trace_exemplar({"traceparent": ["00-not-hex"]}) is None
    two = [f"00-{TRACE}-00f067aa0ba902b7-01", f"00-{TRACE}-00f067aa0ba902b8-01"]
    assert trace_exemplar({"traceparent": two}) is None


def test_edge_jwt_verify_seconds_carries_the_trace_in_openmetrics() -> None:
    metrics.observe_verify_seconds(0.00042, {"trace_id": TRACE})
    families = text_string_to_metric_families(openmetrics(REGISTRY).decode())
    (family,) = [f for f in families if f.name == "edge_jwt_verify_seconds"]
    exemplars = {
        s.labels["le"]: s.exemplar.labels["trace_id"]
        for s in family.samples
        if s.name == "edge_jwt_verify_seconds_bucket" and s.exemplar is not None
    }
    assert exemplars.get("0.0005") == TRACE  # the bucket of the observation
