"""``manage.py rotate_signing_key``: new current key; current → previous; previous → retired."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auth_backend.tokens.keys import rotate_signing_key
from auth_backend.tokens.models import SigningKey, SigningKeyState


class Command(BaseCommand):
    help = (
        "Generate a new access-token signing key and make it current. The current key "
        "becomes previous (still in the JWKS, so tokens it signed keep validating until they "
        "expire); the previous key is retired (dropped from the JWKS, private key wiped). "
        "Rotate at most once per ACCESS_TOKEN_TTL_SECONDS, or tokens signed by the retired "
        "key stop validating before they expire."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        key = rotate_signing_key()
        self.stdout.write(f"current signing key: {key.kid} ({key.algorithm})")
        previous = SigningKey.objects.filter(state=SigningKeyState.PREVIOUS).first()
        if previous is not None:
            self.stdout.write(f"previous signing key: {previous.kid} ({previous.algorithm})")
