"""The system suites' gateway fixtures (tests/support/fixtures.py)."""

from tests.support.fixtures import backend, harness_factory, upstream

__all__ = ["backend", "harness_factory", "upstream"]
