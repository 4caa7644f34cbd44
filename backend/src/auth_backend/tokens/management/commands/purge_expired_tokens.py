"""``manage.py purge_expired_tokens``: delete token bookkeeping nobody can use any more."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auth_backend.tokens.services.purge import purge_expired_tokens


class Command(BaseCommand):
    help = (
        "Delete expired access-token records, expired or revoked refresh tokens, and "
        "sessions with no refresh token left, older than --grace-days (default 7). Run "
        "daily; nothing deleted could still validate."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--grace-days", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        counts = purge_expired_tokens(grace_days=options["grace_days"])
        self.stdout.write(", ".join(f"{name}: {count}" for name, count in counts.items()))
