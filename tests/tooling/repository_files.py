"""The repository's text files as git lists them (tracked, and untracked but not ignored), for
the checks that read every file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_NOT_TEXT = {".lock", ".png", ".pem", ".gz"}


def text_files(*, excluding: Path) -> Iterator[tuple[Path, str]]:
    """(path, text) of every listed UTF-8 file but ``excluding`` (the check's own file)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    for name in listed:
        path = ROOT / name
        if path.resolve() == excluding.resolve() or not path.is_file():
            continue
        if path.suffix in _NOT_TEXT:
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
