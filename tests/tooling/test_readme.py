"""README.md stays a front page: short, and its Layout table matches the tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.tooling.markdown import code_spans, tables_under

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MOST_LINES = 150  # a front page; the manual lives in docs/


def layout_paths() -> list[str]:
    (table,) = tables_under(README.read_text(encoding="utf-8"), "Layout")
    paths = []
    for row in table:
        (path,) = code_spans(row["path"])
        paths.append(path)
    return paths


def tracked_top_level_directories() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    return {name.split("/", 1)[0] + "/" for name in listed if "/" in name}


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MOST_LINES, f"README.md has {lines} lines: move the details to docs/"


def test_every_layout_row_names_a_path_that_exists() -> None:
    for path in layout_paths():
        target = ROOT / path
        if path.endswith("/"):
            assert target.is_dir(), f"README Layout: no directory {path}"
        else:
            assert target.is_file(), f"README Layout: no file {path}"


def test_every_tracked_top_level_directory_has_a_layout_row() -> None:
    """A row for the directory itself or for a folder in it (``deploy/kubernetes/``)."""
    paths = layout_paths()
    missing = {
        d for d in tracked_top_level_directories() if not any(p.startswith(d) for p in paths)
    }
    assert not missing, f"README Layout lacks {sorted(missing)}"
