"""backend/docs/events.md stays in step with the code it documents."""

from __future__ import annotations

from pathlib import Path

from auth_backend.events.relay import STREAM_FIELDS
from auth_backend.events.services import EventType

DOC = Path(__file__).resolve().parents[2] / "backend" / "docs" / "events.md"


def test_every_event_type_is_documented():
    text = DOC.read_text(encoding="utf-8")
    types = [value for name, value in vars(EventType).items() if name.isupper()]

    missing = [t for t in types if f"| `{t}` |" not in text]

    assert types and missing == []


def test_every_stream_field_is_documented():
    text = DOC.read_text(encoding="utf-8")

    assert [f for f in STREAM_FIELDS if f"| `{f}` |" not in text] == []


def test_the_revocation_channel_is_linked():
    assert "(revocation.md)" in DOC.read_text(encoding="utf-8")
