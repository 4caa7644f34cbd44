"""The bridge tests run plugin servers behind the harness: the shared gateway fixtures
(tests/support/fixtures.py)."""

from tests.support.fixtures import harness_factory, upstream

__all__ = ["harness_factory", "upstream"]
