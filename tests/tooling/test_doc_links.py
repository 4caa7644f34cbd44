"""Links between the repository's Markdown documents point at files that exist, and at
headings that exist in them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.tooling.markdown import anchors, relative_links

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    {
        ROOT / "README.md",
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("backend/docs/*.md"),
        *ROOT.glob("*/README.md"),
        *ROOT.glob("backend/*/README.md"),
    }
)


def broken_links(document: Path) -> list[str]:
    broken = []
    for link in relative_links(document.read_text(encoding="utf-8")):
        target, _, fragment = link.partition("#")
        path = (document.parent / unquote(target)).resolve() if target else document
        if not path.exists() or ROOT not in (path, *path.parents):
            broken.append(f"{link}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{link}: no heading #{fragment} in {path.relative_to(ROOT)}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    assert not broken_links(document)
