"""docs/kong-compatibility.md names the test that pins each Kong behaviour: every test it
names must exist, so the table cannot drift from the suite."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs/kong-compatibility.md"
# A test file: tests/… (the system suites) or <package>/tests/… (a package's own tests).
TEST_FILE = r"(?:[\w-]+/)*tests/[\w/]+\.py"
REFERENCE = re.compile(rf"`({TEST_FILE})(?:::([\w*\[\]-]+))?`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_the_compatibility_table_names_exists() -> None:
    references = REFERENCE.findall(DOC.read_text())
    assert len(references) > 30
    missing = []
    for file, name in references:
        path = REPO / file
        assert path.is_file(), file
        if name and not fnmatch.filter(_tests_in(path), name.split("[")[0]):
            missing.append(f"{file}::{name}")
    assert not missing, missing


def test_bare_test_names_belong_to_the_file_named_before_them() -> None:
    """Rows may name several tests of one file: `file.py::a`, `b` — each must exist there."""
    text = DOC.read_text()
    missing = []
    for row in text.splitlines():
        current = None
        for match in re.finditer(rf"`({TEST_FILE})(?:::([\w*]+))?`|`(test_[\w*]+)`", row):
            if match.group(1):
                current = REPO / match.group(1)
            elif current is not None:
                name = match.group(3)
                if not fnmatch.filter(_tests_in(current), name):
                    missing.append(f"{current.relative_to(REPO)}::{name}")
    assert not missing, missing
