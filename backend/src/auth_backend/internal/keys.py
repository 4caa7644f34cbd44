"""Service API keys of the internal API: configuration, hashing, constant-time lookup.

Other services (orders, catalog, ...) call ``/internal/auth/`` with
``Authorization: Bearer <key>``. The service only knows each key's SHA-256, configured as::

    # .env
    # Comma-separated caller:sha256hex pairs. Several entries may name the same caller
    # (key rotation: configure the new key, roll the caller over, remove the old entry).
    INTERNAL_API_KEYS=orders:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,catalog:...

Create a key and its entry with ``manage.py hash_api_key <caller>`` (or hash an existing key
with ``--stdin``). Keys are random 256-bit values, so a fast hash is enough: nobody can
brute-force a preimage, and a slow password hash would only cost CPU on every internal call.
A leaked settings file or environment therefore does not leak usable keys.

A presented key is hashed once and its digest compared with *every* configured digest using
:func:`hmac.compare_digest`, without stopping at the first match, so neither the timing nor
the order of the configuration says which caller (if any) a key belongs to.

This module is imported by ``auth_backend.settings``: it must not touch Django settings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

API_KEY_BYTES = 32
# Generated keys are 43 characters; shorter keys are refused by ``hash_api_key --stdin``.
MIN_API_KEY_LENGTH = 32
# Longer values are rejected before hashing (no real key is this long).
MAX_API_KEY_LENGTH = 256
CALLER_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ConfiguredKey:
    """One ``INTERNAL_API_KEYS`` entry: the caller's name and the SHA-256 of its key."""

    caller: str
    digest: str  # lower-case hex

    def __post_init__(self) -> None:
        if not CALLER_NAME_PATTERN.fullmatch(self.caller):
            raise ValueError("caller names are 1-64 characters of [A-Za-z0-9._-]")
        if not _DIGEST_PATTERN.fullmatch(self.digest):
            raise ValueError("digests are 64 lower-case hex characters (SHA-256)")


def generate_api_key() -> str:
    """A new random key (256 bits, URL-safe base64)."""
    return secrets.token_urlsafe(API_KEY_BYTES)


def hash_api_key(raw_key: str) -> str:
    """The SHA-256 hex digest configured for ``raw_key``."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def parse_api_keys(raw: str, *, env_var: str = "INTERNAL_API_KEYS") -> tuple[ConfiguredKey, ...]:
    """Parse ``caller:sha256hex,caller:sha256hex``; blanks are ignored.

    Raises ``ImproperlyConfigured`` for a malformed entry or a digest configured twice (it
    would be ambiguous which caller presented it). Messages name the entry's position and
    caller, never a digest.
    """
    keys: list[ConfiguredKey] = []
    seen: dict[str, str] = {}
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for position, entry in enumerate(entries, start=1):
        caller, separator, digest = entry.partition(":")
        caller, digest = caller.strip(), digest.strip().lower()
        if not separator or not CALLER_NAME_PATTERN.fullmatch(caller):
            raise ImproperlyConfigured(
                f"{env_var} entry {position} must be caller:sha256hex with a caller name of "
                "1-64 characters from [A-Za-z0-9._-]."
            )
        if not _DIGEST_PATTERN.fullmatch(digest):
            raise ImproperlyConfigured(
                f"{env_var} entry {position} ({caller}) must carry a SHA-256 hex digest "
                "(64 hex characters); create one with `manage.py hash_api_key`."
            )
        if digest in seen:
            raise ImproperlyConfigured(
                f"{env_var} entry {position} ({caller}) repeats the key of {seen[digest]}."
            )
        seen[digest] = caller
        keys.append(ConfiguredKey(caller=caller, digest=digest))
    return tuple(keys)


def caller_for_key(presented_key: str, configured: Iterable[ConfiguredKey]) -> str | None:
    """The caller whose configured digest matches ``presented_key``, else ``None``.

    Every configured digest is compared, in constant time, whatever the outcome.
    """
    if not 0 < len(presented_key) <= MAX_API_KEY_LENGTH:
        return None
    digest = hash_api_key(presented_key).encode("ascii")
    caller: str | None = None
    for key in configured:
        matched = hmac.compare_digest(digest, key.digest.encode("ascii"))
        if matched and caller is None:
            caller = key.caller
    return caller
