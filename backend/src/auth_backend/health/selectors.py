"""Read-only checks of the service's dependencies."""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)


def database_is_ready(*, alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether database ``alias`` answers ``SELECT 1``.

    A failure is logged (exception class and message stay server-side) and reported as
    ``False``; the connection is closed so the next check starts afresh instead of reusing a
    broken persistent connection.
    """
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
    except DatabaseError:
        logger.warning("Database %r is not ready", alias, exc_info=True)
        connection.close()
        return False
    return row is not None and row[0] == 1
