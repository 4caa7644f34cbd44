"""Account work done off the request's thread, so response times say nothing about accounts.

``register``, ``resend-verification`` and ``password/reset`` answer the same for every
address; they must also take the same time, or the clock tells which addresses have an
account (OWASP Forgot Password Cheat Sheet: "Ensure that responses return in a consistent
amount of time ... This could be achieved by using asynchronous calls"; Authentication Cheat
Sheet, "Authentication and Error Messages"). What only a real account costs -- looking up
its tokens, writing a new one, and above all sending an email, an SMTP round trip of tens
to hundreds of milliseconds -- is therefore handed to :func:`submit` and done here.

``ACCOUNT_BACKGROUND_MODE``:

``thread`` (default)
    One daemon worker thread per process (started on first use, so after gunicorn's fork)
    runs the jobs in order from a queue of at most ``ACCOUNT_BACKGROUND_QUEUE_SIZE``. A full
    queue drops the job, logged: the user asks again, as after any lost email. At exit the
    worker gets a few seconds to finish what is queued. Jobs live in memory only: a crashed
    process loses its queue, like an email lost on the way.
``inline``
    Run each job at once, in the caller (the test suite, a management shell). Response times
    then depend on the job again.

A job's exception is logged with its traceback here and never reaches a client.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

Job = tuple[Callable[..., Any], tuple[Any, ...]]

EXIT_DRAIN_SECONDS = 5.0

_lock = threading.Lock()
_queue: queue.Queue[Job] | None = None
_worker: threading.Thread | None = None


def submit(func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` off the request (see the module docstring for the modes)."""
    if settings.ACCOUNT_BACKGROUND_MODE == "inline":
        _run(func, args)
        return
    try:
        _jobs().put_nowait((func, args))
    except queue.Full:
        log.error(
            "account background queue full, job dropped",
            extra={"job": getattr(func, "__qualname__", repr(func))},
        )


def wait_idle(timeout: float = 10.0) -> bool:
    """Whether every job submitted so far has finished within ``timeout`` seconds."""
    jobs = _queue
    if jobs is None:
        return True
    deadline = time.monotonic() + timeout
    while jobs.unfinished_tasks:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def _jobs() -> queue.Queue[Job]:
    global _queue, _worker
    with _lock:
        if _queue is None:
            _queue = queue.Queue(maxsize=max(settings.ACCOUNT_BACKGROUND_QUEUE_SIZE, 1))
            atexit.register(wait_idle, EXIT_DRAIN_SECONDS)
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(
                target=_work, args=(_queue,), name="accounts-background", daemon=True
            )
            _worker.start()
        return _queue


def _work(jobs: queue.Queue[Job]) -> None:
    while True:
        func, args = jobs.get()
        try:
            _run(func, args)
        finally:
            close_old_connections()  # this thread's own connection, by CONN_MAX_AGE
            jobs.task_done()


def _run(func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        func(*args)
    except Exception:  # logged here; the request was answered already
        log.exception(
            "account background job failed",
            extra={"job": getattr(func, "__qualname__", repr(func))},
        )
