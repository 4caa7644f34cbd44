"""Real concurrency against PostgreSQL: a fresh migrated database and a thread race.

SQLite in-memory test databases serialise everything through one connection, so races only
show on a real server. ``postgres_default`` (the conftest.py fixture over this) points
Django's ``default`` connection at a brand-new database for one test and drops it after.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from django.core import mail
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from auth_backend.core.env import database_config


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def fresh_postgres_default(
    postgres_url: str, django_db_blocker: Any, settings: Any
) -> Iterator[str]:
    """Django's ``default`` database is a fresh, migrated PostgreSQL database for one test."""
    from auth_backend.tokens.keys import signing_keys

    name = f"concurrency_{uuid.uuid4().hex[:12]}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    saved_settings = connections.settings[DEFAULT_DB_ALIAS]
    saved_connection = connections[DEFAULT_DB_ALIAS]
    configured = connections.configure_settings({DEFAULT_DB_ALIAS: database_config(url)})
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # revocation publishing is not under test
    mail.outbox = []
    try:
        with django_db_blocker.unblock():
            connections.settings[DEFAULT_DB_ALIAS] = configured[DEFAULT_DB_ALIAS]
            del connections[DEFAULT_DB_ALIAS]
            signing_keys.invalidate()
            call_command("migrate", verbosity=0, interactive=False)
            assert connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
            yield url
    finally:
        with django_db_blocker.unblock():
            connections[DEFAULT_DB_ALIAS].close()
            connections.settings[DEFAULT_DB_ALIAS] = saved_settings
            connections[DEFAULT_DB_ALIAS] = saved_connection
            signing_keys.invalidate()
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def race(target: Callable[[int], Any], count: int, timeout: float = 120) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads released at once; their results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()  # this thread's connections only

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
