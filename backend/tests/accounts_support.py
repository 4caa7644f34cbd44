"""Helpers for the accounts tests (backend/tests/test_accounts_*.py)."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from django.core import mail
from django.utils import timezone

from auth_backend.accounts.models import User
from auth_backend.events.models import OutboxEvent

API = "/api/auth/"
PASSWORD = "correct-horse-battery-staple-42"
# A fixed TOTP clock: the start of a 30 s step, far from any real "now".
T0 = 1_900_000_020.0
assert T0 % 30 == 0

_TOKEN_LINE = {
    "verification": re.compile(r"^verification token: (\S+)$", re.M),
    "reset": re.compile(r"^password reset token: (\S+)$", re.M),
}


def make_user(
    email: str = "alice@example.com",
    *,
    password: str | None = PASSWORD,
    verified: bool = True,
    **fields: Any,
) -> User:
    if verified:
        fields.setdefault("email_verified_at", timezone.now())
    return User.objects.create_user(email, password=password, **fields)


def post(client: Any, path: str, body: Any = None, **extra: Any) -> Any:
    return client.post(
        API + path, body if body is not None else {}, content_type="application/json", **extra
    )


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]


def field_errors(response: Any) -> dict[str, list[str]]:
    assert error_code(response) == "invalid", response.json()
    return response.json()["error"]["details"]["fields"]


def without_request_id(response: Any) -> Any:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return body


def mailed_tokens(kind: str, to: str | None = None) -> list[str]:
    """Raw tokens of ``kind`` (``verification`` / ``reset``) in the test outbox, in order."""
    tokens = []
    for message in mail.outbox:
        if to is None or message.to == [to]:
            tokens += _TOKEN_LINE[kind].findall(message.body)
    return tokens


def last_mailed_token(kind: str, to: str | None = None) -> str:
    tokens = mailed_tokens(kind, to)
    assert tokens, f"no {kind} email in the outbox"
    return tokens[-1]


def events(event_type: str, subject: Any = None) -> list[OutboxEvent]:
    rows = OutboxEvent.objects.filter(event_type=event_type)
    if subject is not None:
        rows = rows.filter(subject_id=str(getattr(subject, "pk", subject)))
    return list(rows.order_by("occurred_at"))


def totp_code(secret: str, at: float, steps: int = 0) -> str:
    """The code an authenticator shows ``steps`` 30-second steps after ``at``."""
    return pyotp.TOTP(secret).at(at + 30 * steps)
