"""Code, tests and docs cite what a maintainer of this repository can open.

That is the repository's own docs, Kong's source, RFCs and specs; not the planning documents
or tracker numbers of whoever wrote the code, which a reader of the repository cannot follow
(docs/architecture.md holds the architecture they described).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.tooling.repository_files import text_files

ROOT = Path(__file__).resolve().parents[2]

# A design document outside the repository, or an issue tracker number written out as the
# word and a number ("#" with a number is left alone: it is also CSS, Markdown and shell).
UNREACHABLE = re.compile(r"DESIGN\.md|\.\./shared/|\b[Ii]ssues? \d+\b")
THIS_FILE = Path(__file__).resolve()


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = []
    for path, text in text_files(excluding=THIS_FILE):
        for number, line in enumerate(text.splitlines(), start=1):
            if UNREACHABLE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "cite docs/, Kong's source or an RFC instead:\n" + "\n".join(offenders)


# A path into a test tree: tests/… or <package>/tests/…, a file, a folder or a glob. Not after
# another path character (a URL, or the tail of a longer path) nor before a make pattern (%).
TEST_PATH = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)*tests(?:/[\w*.-]+)+)(?![\w*.%/-])")


def stale_test_paths(text: str, base: Path) -> list[str]:
    """The test paths ``text`` names that exist neither from the repository root nor from
    ``base`` (the folder of the file that names them)."""
    stale = []
    for match in TEST_PATH.finditer(text):
        named = match.group(1).rstrip(".")
        if not any(True for _ in ROOT.glob(named)) and not any(True for _ in base.glob(named)):
            stale.append(named)
    return stale


def test_every_test_path_a_file_names_exists() -> None:
    """Tests move between trees (each package owns its own, docs/testing.md); a doc, comment or
    docstring that still names the old place would send a maintainer nowhere."""
    offenders = []
    for path, text in text_files(excluding=THIS_FILE):
        for number, line in enumerate(text.splitlines(), start=1):
            for named in stale_test_paths(line, path.parent):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {named}")
    assert not offenders, "no such test file or folder:\n" + "\n".join(offenders)


def test_a_moved_test_path_is_stale_and_a_glob_or_relative_one_is_not() -> None:
    assert stale_test_paths("see `tests/unit/test_guard.py`", ROOT) == ["tests/unit/test_guard.py"]
    assert stale_test_paths("(tests/harness/support.py)", ROOT) == ["tests/harness/support.py"]
    assert stale_test_paths("kong-plugins/tests/test_guard.py, tests/support/", ROOT) == []
    assert stale_test_paths("`tests/bench/plugins/typical_*.py`", ROOT) == []
    assert stale_test_paths("prometheus/tests/*.yml", ROOT / "observability") == []
    assert stale_test_paths("tests/kubernetes/requirements-%.txt", ROOT) == []
    assert stale_test_paths("https://github.com/Kong/kong/tree/master/spec/tests/x.py", ROOT) == []
