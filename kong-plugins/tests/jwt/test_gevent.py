"""The core under gevent monkey patching, as the plugin server runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROBE = Path(__file__).resolve().parent / "gevent_probe.py"


def test_single_flight_and_background_refresh_under_gevent() -> None:
    result = subprocess.run(
        [sys.executable, str(PROBE)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the probe imports tests.support
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [200] * 20
    assert report["first_fetches"] == 1, "20 concurrent greenlets, one JWKS fetch"
    assert report["later_fetches"] >= 2, "the refresh greenlet ran in the background"
