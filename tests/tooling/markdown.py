"""What the docs tests read out of the repository's Markdown: code blocks, tables, links."""

from __future__ import annotations

import re
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$", re.MULTILINE)
# [text](target) outside code: inline links only, which is all the docs use.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def without_code(text: str) -> str:
    """The text with fenced blocks and inline code blanked out (links there are examples)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def tables_under(text: str, heading: str) -> list[list[dict[str, str]]]:
    """The tables between the heading named ``heading`` and the next heading, each as its
    body rows keyed by the header row's cells."""
    text = FENCE.sub("", text)  # a shell comment in a code block is no heading
    start = next((m.end() for m in HEADING.finditer(text) if m.group(2) == heading), None)
    if start is None:
        raise LookupError(f"no heading {heading!r}")
    section = text[start:]
    following = HEADING.search(section)
    if following is not None:
        section = section[: following.start()]
    tables: list[list[list[str]]] = []
    previous_was_row = False
    for line in section.splitlines():
        is_row = line.startswith("|")
        if is_row:
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not previous_was_row:
                tables.append([])
            if not all(set(cell) <= set("-: ") for cell in cells):  # not the separator
                tables[-1].append(cells)
        previous_was_row = is_row
    return [[dict(zip(table[0], row, strict=True)) for row in table[1:]] for table in tables]


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {anchor(m.group(2)) for m in HEADING.finditer(text)}


def relative_links(text: str) -> list[str]:
    """Link targets that point into the repository (no scheme, no mail)."""
    return [
        target
        for target in LINK.findall(without_code(text))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    ]
