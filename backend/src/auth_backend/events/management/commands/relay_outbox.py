"""``manage.py relay_outbox``: run the outbox relay (see :mod:`auth_backend.events.relay`).

Runs until SIGTERM/SIGINT, which finish the batch in progress and exit 0. ``--once``
publishes the current backlog and exits (non-zero if some events could not be published).
Several instances may run side by side; they skip each other's locked rows.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) set, each non-empty batch is
an ``events.relay`` trace (with its Redis and database spans), exported over OTLP; see
:mod:`auth_backend.core.tracing`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections

from auth_backend.core import tracing
from auth_backend.events.bus import redis_client
from auth_backend.events.relay import BatchResult, publish_batch

logger = logging.getLogger("auth_backend.events.relay")

MAX_BACKOFF_SECONDS = 30.0
# What signal.signal takes and returns: a handler, SIG_DFL/SIG_IGN, or None (not set from
# Python).
SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


class Command(BaseCommand):
    help = "Publish committed outbox events to the Redis Stream (at-least-once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Publish the current backlog, then exit."
        )
        parser.add_argument(
            "--interval",
            type=_positive_float,
            default=settings.EVENTS_RELAY_INTERVAL_MS / 1000,
            help="Seconds to wait when the outbox is empty (default %(default)s).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.EVENTS_RELAY_BATCH_SIZE,
            help="Events per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--maxlen",
            type=int,
            default=settings.EVENTS_STREAM_MAXLEN,
            help="Approximate stream length cap, MAXLEN ~ N; 0 disables "
            "trimming (default %(default)s).",
        )
        parser.add_argument(
            "--stream",
            default=settings.EVENTS_STREAM,
            help="Redis Stream key (default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        self._stop = threading.Event()
        # Tracing this command switched on is flushed and switched off when it ends; tracing
        # the process already had (a test, a caller) is left alone.
        owns_tracing = not tracing.is_enabled() and tracing.configure_tracing()
        client = redis_client(timeout_seconds=settings.EVENTS_REDIS_TIMEOUT_MS / 1000)
        previous = self._install_signal_handlers()
        try:
            if options["once"]:
                self._drain(client, options)
            else:
                self._loop(client, options)
        finally:
            self._restore_signal_handlers(previous)
            client.close()
            if owns_tracing:
                tracing.shutdown_tracing()

    # --- modes -------------------------------------------------------------------------

    def _drain(self, client: redis.Redis, options: dict[str, Any]) -> None:
        published = failed = 0
        while not self._stop.is_set():
            result = self._batch(client, options)
            published += len(result.published)
            failed += len(result.failed)
            if result.failed or len(result.published) < options["batch_size"]:
                break
        self.stdout.write(f"published {published} event(s) to {options['stream']}")
        if failed:
            raise CommandError(
                f"{failed} event(s) could not be published; they stay in "
                "the outbox for the next run."
            )

    def _loop(self, client: redis.Redis, options: dict[str, Any]) -> None:
        interval: float = options["interval"]
        failures = 0
        logger.info("outbox relay started", extra={"stream": options["stream"]})
        while not self._stop.is_set():
            try:
                result = self._batch(client, options)
            except (redis.RedisError, DatabaseError):
                logger.exception("outbox relay round failed")
                close_old_connections()  # drop a broken database connection
                result = BatchResult(connection_lost=True)
            if result.connection_lost or (result.failed and not result.published):
                failures += 1
                self._stop.wait(min(interval * 2 ** min(failures, 10), MAX_BACKOFF_SECONDS))
                continue
            failures = 0
            if len(result.published) + len(result.failed) >= options["batch_size"]:
                continue  # a backlog: keep going without sleeping
            self._stop.wait(interval)
        logger.info("outbox relay stopped")

    def _batch(self, client: redis.Redis, options: dict[str, Any]) -> BatchResult:
        return publish_batch(
            client,
            stream=options["stream"],
            batch_size=options["batch_size"],
            maxlen=options["maxlen"],
        )

    # --- signals -----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s received; stopping after the current batch", signum)
        self._stop.set()

    def _install_signal_handlers(self) -> dict[int, SignalHandler]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals can only be handled in the main thread (e.g. under a test)
        previous: dict[int, SignalHandler] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, SignalHandler]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
