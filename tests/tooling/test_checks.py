"""The developer commands: `make help` lists every target, pre-commit runs what CI checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"


def _phony_targets() -> set[str]:
    text = MAKEFILE.read_text(encoding="utf-8")
    names: set[str] = set()
    for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.MULTILINE):
        names.update(line.split())
    return names


def _make(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_make_help_lists_every_phony_target() -> None:
    listed = {line.split()[1] for line in _make("help").splitlines() if line.startswith("make ")}
    assert _phony_targets() <= listed, f"missing from make help: {_phony_targets() - listed}"


def test_every_target_in_help_is_phony() -> None:
    listed = {line.split()[1] for line in _make("help").splitlines() if line.startswith("make ")}
    assert listed <= _phony_targets(), f"not declared .PHONY: {listed - _phony_targets()}"


def test_make_check_runs_lint_format_check_and_mypy() -> None:
    commands = _make("-n", "check")
    assert "ruff check ." in commands
    assert "ruff format --check ." in commands
    assert re.search(r"\bmypy\b", commands)


def test_ci_runs_make_check_before_make_test() -> None:
    lines = [ln.strip() for ln in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()]
    assert "make check" in lines and "make test" in lines
    assert lines.index("make check") < lines.index("make test")


def test_pre_commit_config_is_valid_and_runs_the_checks_of_make_check() -> None:
    config = ROOT / ".pre-commit-config.yaml"
    pre_commit = Path(sys.executable).parent / "pre-commit"
    subprocess.run([str(pre_commit), "validate-config", str(config)], check=True, timeout=60)
    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    entries = " | ".join(hook["entry"] for hook in hooks)
    assert "ruff check" in entries
    assert "ruff format --check" in entries
    assert "make --no-print-directory mypy" in entries
