"""Fixtures that run the harness for real (tests/harness/support.py), shared by the suites
that drive the gateway: tests/harness (Kong's behaviour) and tests/e2e (our plugins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.backend import Backend, running_backend
from tests.harness.support import HarnessRunner, Upstream, start_upstream


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
