"""The session's stack (see stack.py) and its users."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kong_harness.conf import load_kong_conf
from tests.security.stack import PLUGINS, Stack, client_address, issuer_key_of, security_kong_yml
from tests.support.backend import User, running_backend
from tests.support.harness import REPO, shipped_plugins_runner, start_upstream
from tests.support.services import redis_unavailable, require


def repo_nginx_settings() -> tuple[str, ...]:
    """kong/kong.conf's nginx settings (request size and buffering, real IP header) as
    kong.conf lines: the stack's own file only sets its ports, paths and plugin servers."""
    values = load_kong_conf(REPO / "kong/kong.conf", env={}).values
    return tuple(
        f"{key} = {value}"
        for key, value in values.items()
        if key.startswith("nginx_") or key in ("real_ip_header", "client_body_buffer_size")
    )


def _own_address(request: httpx.Request) -> None:
    if "x-real-ip" not in request.headers:
        request.headers["X-Real-IP"] = client_address()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(redis_unavailable())  # the backend's assertion checks fail closed without it
    workdir: Path = tmp_path_factory.mktemp("security")
    up, server = start_upstream()
    try:
        with (
            running_backend(workdir) as backend,
            ThreadPoolExecutor(1) as pool,
        ):
            # manage.py takes seconds to start: read the key while the plugin servers start
            issuer = pool.submit(issuer_key_of, backend)
            plugin_servers = tuple(name for name in PLUGINS if name != "prometheus")
            runner = shipped_plugins_runner(
                security_kong_yml(backend, up.port),
                plugin_servers,
                status=True,
                conf_lines=repo_nginx_settings(),
            ).start()
            try:
                with httpx.Client(
                    base_url=runner.url,
                    timeout=30,
                    trust_env=False,
                    event_hooks={"request": [_own_address]},
                ) as client:
                    yield Stack(backend, runner, up, client, issuer.result())
            finally:
                runner.stop()
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def user(stack: Stack) -> User:
    """A verified user whose session the tests do not end (read-only uses)."""
    return stack.sign_up()


@pytest.fixture(scope="session")
def victim(stack: Stack) -> User:
    """The user an attacker would like to be."""
    return stack.sign_up()


@pytest.fixture
def fresh_user(stack: Stack) -> User:
    """A user of one's own, for tests that end sessions or change the account."""
    return stack.sign_up()
