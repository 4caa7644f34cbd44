"""Fixtures that run the harness (tests/support/harness.py) and the backend
(tests/support/backend.py) for real; each test tree's conftest.py imports the ones it uses:
kong/harness/tests (Kong's behaviour), kong-plugins/tests (the bridge), the system suites."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.backend import Backend, running_backend
from tests.support.harness import HarnessRunner, Upstream, start_upstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up, server = start_upstream()
    yield up
    server.shutdown()


@pytest.fixture
def harness_factory() -> Iterator[Any]:
    started: list[HarnessRunner] = []

    def make(kong_yml: str, **kwargs: Any) -> HarnessRunner:
        runner = HarnessRunner(kong_yml, **kwargs).start()
        started.append(runner)
        return runner

    yield make
    for runner in started:
        runner.stop()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """One real backend for the session's end-to-end tests (see backend.py)."""
    with running_backend(tmp_path_factory.mktemp("backend")) as server:
        yield server
