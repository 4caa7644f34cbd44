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
