"""``make bench`` counts a plugin server's CPU by the process clock (tests/bench/measure.py):
kong-pdk's threads mode runs every event in a thread that then exits, and that work must
stay in the figure."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.bench.measure import cpu_ns

# A thread burns CPU and exits; the process then reports the thread's own CPU time and
# waits (for the test to read its clock) until its stdin closes.
_CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    used = []
    def burn():
        start = time.thread_time_ns()
        while time.thread_time_ns() - start < 200_000_000:
            pass
        used.append(time.thread_time_ns() - start)
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
    # join() returns once the thread's Python work is done; the OS thread ends a moment
    # later, and until then /proc still lists it among the live ones
    while len(os.listdir("/proc/self/task")) > 1:
        time.sleep(0.001)
    print(used[0], flush=True)
    sys.stdin.read()
    """
)


def _live_threads_ns(pid: int) -> int:
    """What the bench summed before: on-CPU time of the threads still alive."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total


def test_cpu_of_a_thread_that_has_exited_is_counted() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        burned = int(child.stdout.readline())
        live = _live_threads_ns(child.pid)  # the main thread only, now idle on stdin
        measured = cpu_ns(child.pid)
    finally:
        child.communicate("")
    # Everything the live threads used, and the exited thread's work on top: a sum over
    # the live threads alone (what the bench summed before) would miss ``burned``.
    assert measured - live >= burned
