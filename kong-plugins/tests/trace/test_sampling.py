"""Head sampling: parent-based, else a ratio that is deterministic on the trace id."""

from __future__ import annotations

import pytest

from edge_plugins.trace.ids import new_trace_id
from edge_plugins.trace.sampling import InvalidSampleRatio, RatioSampler


def test_parent_decision_is_respected_whatever_the_ratio() -> None:
    trace_id = new_trace_id()
    assert RatioSampler.of(0.0).decide(trace_id, True) is True
    assert RatioSampler.of(1.0).decide(trace_id, False) is False


def test_extreme_ratios() -> None:
    assert RatioSampler.of(1.0).decide("f" * 32, None) is True
    assert RatioSampler.of(0.0).decide("0" * 31 + "1", None) is False


def test_ratio_looks_at_the_right_most_56_bits_only() -> None:
    sampler = RatioSampler.of(0.5)
    # The left-most 9 bytes do not matter; the low 56 bits decide against 2^55.
    assert sampler.decide("ff" * 9 + "7fffffffffffff", None) is True
    assert sampler.decide("00" * 9 + "80000000000000", None) is False


def test_ratio_decision_is_deterministic_per_trace_id() -> None:
    sampler = RatioSampler.of(0.25)
    ids = [new_trace_id() for _ in range(2000)]
    first = [sampler.decide(t, None) for t in ids]
    assert first == [RatioSampler.of(0.25).decide(t, None) for t in ids]
    assert 0.18 < sum(first) / len(first) < 0.32


def test_lower_ratio_samples_a_subset_of_a_higher_one() -> None:
    low, high = RatioSampler.of(0.1), RatioSampler.of(0.6)
    for trace_id in (new_trace_id() for _ in range(500)):
        assert not low.decide(trace_id, None) or high.decide(trace_id, None)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, "0.5", True])
def test_invalid_ratio(ratio: object) -> None:
    with pytest.raises(InvalidSampleRatio):
        RatioSampler.of(ratio)  # type: ignore[arg-type]
