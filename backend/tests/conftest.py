"""pytest setup for the Django backend tests (only this directory uses Django).

Django is configured here, in ``pytest_configure``, rather than in the root pytest config, so
the other test directories stay Django-free. This works whether pytest is pointed at
``backend/tests`` (this conftest is loaded up front and pytest-django finishes the setup) or
at ``tests`` (this conftest is loaded during collection and pytest replays
``pytest_configure`` for it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.services import REDIS_TEST_URL, postgres_probe, redis_unavailable, require

TEST_ENV = {
    "DJANGO_SETTINGS_MODULE": "auth_backend.settings",
    # A throwaway key so tests never depend on (or create) backend/.keys/secret_key.
    "DJANGO_SECRET_KEY": "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, value in TEST_ENV.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


@pytest.fixture(autouse=True, scope="session")
def _database_blocked_by_default(django_db_blocker: Any) -> Iterator[None]:
    """Database access only for tests that ask for it (``db`` fixture, ``django_db`` mark).

    pytest-django does this itself when Django is set up before it configures; this covers
    the ``pytest tests`` case, where this conftest is loaded later.
    """
    with django_db_blocker.block():
        yield


# The production hasher (Argon2id, ~0.3 s a hash on a shared 2-core machine) for the tests
# that pin it (``@pytest.mark.argon2``); a fast one for the rest, whose subject is not the
# hash: sign-ups and sign-ins then cost milliseconds (Django's testing docs, "Speeding up
# the tests": password hashing).
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _password_hasher(request: pytest.FixtureRequest, settings: Any) -> Iterator[None]:
    from auth_backend.accounts.services.passwords import _dummy_password_hash

    if request.node.get_closest_marker("argon2") is None:
        settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    # The sign-in's dummy hash is made once per process, by the hasher configured then.
    _dummy_password_hash.cache_clear()
    yield
    _dummy_password_hash.cache_clear()


@pytest.fixture(scope="session")
def _postgres_probe() -> tuple[str | None, str]:
    """tests/support/services.py ``postgres_probe``, once per session."""
    return postgres_probe()


@pytest.fixture
def postgres_url(_postgres_probe: tuple[str | None, str]) -> str:
    """URL of the real PostgreSQL for ``@pytest.mark.postgres`` tests.

    Unreachable: skip locally, but fail when ``CI=true`` so a missing service cannot turn
    the PostgreSQL tests into silent skips.
    """
    url, why = _postgres_probe
    if url:
        return url
    reason = f"PostgreSQL not reachable at localhost:5432 (db 'test'): {why}"
    require(reason)


@pytest.fixture
def health_database(
    monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any
) -> Iterator[Callable[..., Any]]:
    """Point the readiness check at another, real database for one test.

    ``health_database(url, **database_config_kwargs)`` builds the connection exactly as the
    settings do (``database_config``), so a failing URL fails inside the real driver.
    """
    from django.db import DEFAULT_DB_ALIAS
    from django.db.utils import ConnectionHandler

    from auth_backend.core.env import database_config
    from auth_backend.health import selectors

    handlers: list[ConnectionHandler] = []

    def use(url: str, **kwargs: Any) -> Any:
        handler = ConnectionHandler({DEFAULT_DB_ALIAS: database_config(url, **kwargs)})
        handlers.append(handler)
        monkeypatch.setattr(selectors, "connections", handler)
        return handler[DEFAULT_DB_ALIAS]

    with django_db_blocker.unblock():
        yield use
        for handler in handlers:
            handler.close_all()


@pytest.fixture
def internal_client() -> Any:
    """A test client whose requests arrive on the internal listener (``/internal/``, admin).

    The Django test client has no gunicorn socket: its requests are on the public listener
    unless the WSGI environ names another (auth_backend.core.listeners)."""
    from django.test import Client

    return Client(**{"auth_backend.listener": "internal"})


@pytest.fixture(autouse=True)
def gateway_jwks(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> Iterator[Any]:
    """Every backend test trusts the test gateway key (backend/tests/identity_support.py)."""
    from identity_support import write_gateway_jwks

    from auth_backend.identity.assertion import gateway_keys

    path = write_gateway_jwks(tmp_path_factory.mktemp("gateway") / "jwks.json")
    settings.GATEWAY_JWKS = str(path)
    settings.GATEWAY_ISSUER = "kong-edge"
    gateway_keys.clear()
    yield path
    gateway_keys.clear()


@pytest.fixture(autouse=True)
def _account_jobs_inline(settings: Any) -> None:
    """Account emails are sent in the request (``inline``): a background thread would not see
    the test's uncommitted rows. test_accounts_enumeration.py runs the worker thread."""
    settings.ACCOUNT_BACKGROUND_MODE = "inline"


@pytest.fixture(autouse=True)
def _login_throttle_off(settings: Any) -> None:
    """The sign-in throttle (Redis) is off unless a test turns it on: tests that sign in
    repeatedly must not share counters across tests or runs (test_accounts_throttling.py
    tests it, with a key prefix of its own)."""
    settings.LOGIN_THROTTLE_ENABLED = False


@pytest.fixture
def redis_url(settings: Any) -> str:
    """The real Redis (db 15) for ``@pytest.mark.redis`` tests, also set as REDIS_URL.

    Keys are not flushed wholesale; tests use their own stream/channel names or clean up
    what they create.
    """
    require(redis_unavailable(REDIS_TEST_URL))
    settings.REDIS_URL = REDIS_TEST_URL
    return REDIS_TEST_URL


@pytest.fixture
def postgres_default(postgres_url: str, django_db_blocker: Any, settings: Any) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database as Django's default (concurrency_support.py)."""
    from concurrency_support import fresh_postgres_default

    yield from fresh_postgres_default(postgres_url, django_db_blocker, settings)


SILENCE_HANG_GUARD_SECONDS = 30.0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database or Redis).

    Each connection is closed after ``SILENCE_HANG_GUARD_SECONDS``: a hang guard, so that a
    client without a timeout fails its test (it sees a closed connection, too late) instead
    of hanging the run. Generous, so that no client with a timeout ever gets that far.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[tuple[float, socket.socket]] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            for at, conn in list(accepted):
                if time.monotonic() - at > SILENCE_HANG_GUARD_SECONDS:
                    conn.close()
            try:
                accepted.append((time.monotonic(), server.accept()[0]))
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for _, conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[Any]:
    """A plain client of the test Redis (not pytest-django's HTTP ``client``)."""
    import redis

    conn = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield conn
    conn.close()


@pytest.fixture
def stream(redis_conn: Any, settings: Any) -> Iterator[str]:
    """A stream key of this test only (also the configured EVENTS_STREAM), deleted after."""
    import uuid

    name = f"test.auth.events.{uuid.uuid4().hex}"
    settings.EVENTS_STREAM = name
    yield name
    redis_conn.delete(name)


@pytest.fixture(autouse=True)
def identity_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The backend's once-only/revocation checks without Redis (backend/tests/identity_support.py),
    and test-client assertions bound to the request that sends them, as the edge mints
    them. Tests of the Redis store swap in the real one (test_identity_binding.py)."""
    from django.test.client import RequestFactory
    from identity_support import MemoryIdentityStore, bind_pending_assertion

    from auth_backend.identity import store

    memory = MemoryIdentityStore()
    monkeypatch.setattr(store, "identity_store", memory)
    base_environ = RequestFactory._base_environ

    def bound_environ(self: RequestFactory, **request: Any) -> dict[str, Any]:
        return bind_pending_assertion(base_environ(self, **request))

    monkeypatch.setattr(RequestFactory, "_base_environ", bound_environ)
    return memory
