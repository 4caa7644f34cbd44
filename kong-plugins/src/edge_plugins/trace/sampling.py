"""Head sampling: the parent's decision when there is a trusted parent, else a ratio.

The ratio decision is deterministic on the trace id, so every component that samples the
same trace at the same ratio agrees: a trace is sampled when its right-most 56 bits (the
7 bytes that Trace Context Level 2's ``random-trace-id`` flag guarantees random) fall below
``ratio * 2^56``, the threshold form of OpenTelemetry's consistent probability sampling.
The parent's flag wins over the ratio (OpenTelemetry's ParentBased sampler): a trace a
client records must not lose its gateway span, and a trace it declined must not grow one.
Untrusted clients have no parent here at all (:mod:`.propagation`), so they cannot force
sampling on.
"""

from __future__ import annotations

from dataclasses import dataclass

RANDOM_BITS = 56
_SCALE = 1 << RANDOM_BITS
_MASK = _SCALE - 1


class InvalidSampleRatio(ValueError):
    """The ratio is not a number in [0, 1]."""


@dataclass(frozen=True, slots=True)
class RatioSampler:
    """``sample_ratio`` of the plugin config, with its threshold computed once."""

    ratio: float
    threshold: int

    @classmethod
    def of(cls, ratio: object) -> RatioSampler:
        """The sampler for a raw config value: anything but a number in [0, 1] is refused."""
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise InvalidSampleRatio(f"sample_ratio must be a number in [0, 1], got {ratio!r}")
        return cls(ratio=float(ratio), threshold=round(ratio * _SCALE))

    def by_ratio(self, trace_id: str) -> bool:
        """The ratio decision for a 32-hex trace id (its low 56 bits against the threshold)."""
        return (int(trace_id[-14:], 16) & _MASK) < self.threshold

    def decide(self, trace_id: str, parent_sampled: bool | None) -> bool:
        """Respect a parent's decision; otherwise sample by ratio."""
        if parent_sampled is not None:
            return parent_sampled
        return self.by_ratio(trace_id)
