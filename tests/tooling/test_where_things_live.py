"""docs/architecture.md's "Where things live" tables name files that exist and functions
those files define, so a rename or a move cannot leave them pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.tooling.markdown import code_spans, tables_under

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def rows() -> list[dict[str, str]]:
    tables = tables_under(DOC.read_text(encoding="utf-8"), "Where things live")
    return [row for table in tables for row in table]


def defined_names(source: str) -> set[str]:
    """Module-level functions, classes and assignments, and ``Class.member`` for members."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{member.name}")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def missing_from(path: Path, names: list[str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return [name for name in names if name not in defined_names(text)]
    # config: the named key verbatim, not as the prefix of a longer name
    return [n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


def test_the_section_names_the_five_lookups_and_the_three_verifiers() -> None:
    lookups = " ".join(row.get("you look for", "") for row in rows())
    for lookup in (
        "a JWT is verified",
        "the login limit is set",
        "traceparent is made",
        "the backend checks the assertion",
        "`auth_login_total`",
    ):
        assert lookup in lookups
    verifiers = [row["verifier"] for row in rows() if "verifier" in row]
    assert verifiers == ["edge", "backend tokens", "assertion"]


@pytest.mark.parametrize(
    "row", rows(), ids=lambda row: f"{code_spans(row['file'])[0]}:{row['function']}"
)
def test_every_named_file_defines_every_named_function(row: dict[str, str]) -> None:
    (file,) = code_spans(row["file"])
    path = ROOT / file
    assert path.is_file(), f"{file} does not exist"
    names = code_spans(row["function"])
    assert names, f"{file}: the row names no function"
    assert not missing_from(path, names), f"{file} does not define {missing_from(path, names)}"
