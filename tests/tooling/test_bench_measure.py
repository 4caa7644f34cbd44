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


def test_one_cpu_holds_for_the_threads_and_processes_started_after() -> None:
    # make bench --one-cpu: the gateways and plugin servers it starts run where it does.
    child = textwrap.dedent(
        """
        import os, subprocess, sys, threading
        from tests.bench.measure import pin_to_one_cpu
        cpu = pin_to_one_cpu()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
        thread.start()
        thread.join()
        grandchild = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        print(cpu, seen[0], grandchild)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split(maxsplit=1)
    cpu, rest = int(out[0]), out[1]
    assert rest.split() == [f"[{cpu}]", f"[{cpu}]"]
