"""``manage.py hash_api_key <caller> [--stdin]``: a service API key and its settings entry.

Without ``--stdin`` a new random key is generated. The key is printed once -- hand it to
the calling service -- together with the ``INTERNAL_API_KEYS`` entry (``caller:sha256hex``)
for this service's environment; the key itself is stored nowhere. ``--stdin`` hashes an
existing key read from standard input instead (keeps it out of shell history and ``ps``).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_backend.internal.keys import (
    CALLER_NAME_PATTERN,
    MAX_API_KEY_LENGTH,
    MIN_API_KEY_LENGTH,
    generate_api_key,
    hash_api_key,
)


class Command(BaseCommand):
    help = (
        "Generate (or hash from stdin) an internal API key and print its INTERNAL_API_KEYS entry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("caller", help="Name of the calling service, e.g. orders.")
        parser.add_argument(
            "--stdin",
            action="store_true",
            help="Hash the key read from standard input instead of generating one.",
        )

    def handle(self, *args: Any, caller: str, stdin: bool, **options: Any) -> None:
        if not CALLER_NAME_PATTERN.fullmatch(caller):
            raise CommandError("The caller name must be 1-64 characters of [A-Za-z0-9._-].")
        if stdin:
            key = sys.stdin.readline().strip()
            if not MIN_API_KEY_LENGTH <= len(key) <= MAX_API_KEY_LENGTH or " " in key:
                raise CommandError(
                    f"The key must be {MIN_API_KEY_LENGTH}-{MAX_API_KEY_LENGTH} characters "
                    "without spaces; omit --stdin to generate one."
                )
        else:
            key = generate_api_key()
            self.stdout.write(f"API key for {caller} (shown once; give it to the service):")
            self.stdout.write(f"  {key}")
        self.stdout.write("INTERNAL_API_KEYS entry:")
        self.stdout.write(f"  {caller}:{hash_api_key(key)}")
