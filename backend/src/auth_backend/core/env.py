"""Reading settings from environment variables (used by :mod:`auth_backend.settings`).

Values are validated strictly: a typo such as ``DJANGO_DEBUG=ture`` stops the process with
``ImproperlyConfigured`` instead of silently falling back to a default.
"""

from __future__ import annotations

import os
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer.") from None


def env_list(name: str, default: str = "") -> list[str]:
    """Comma-separated list; blanks are dropped."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str, default: str = "") -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8,::1``)."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated IP addresses or CIDR networks."
            ) from None
    return tuple(networks)


def load_secret_key(*, debug: bool, key_file: Path, env_var: str = "DJANGO_SECRET_KEY") -> str:
    """The Django ``SECRET_KEY``.

    * ``$DJANGO_SECRET_KEY`` when set (the only source with DEBUG off);
    * with DEBUG on and no variable: the key in ``key_file``, created with a fresh random key
      (mode 0600, directory 0700) on first use, so local sessions/tokens survive restarts and
      no key is ever committed;
    * with DEBUG off and no variable: refuse to start.
    """
    key = env_str(env_var)
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            f"{env_var} is not set. It is required when DJANGO_DEBUG is off; "
            f"for local development set DJANGO_DEBUG=1 to use a generated key in {key_file}."
        )
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = key_file.read_text(encoding="utf-8").strip()
        if not key:
            raise ImproperlyConfigured(f"{key_file} is empty; delete it to regenerate.") from None
        return key
    key = secrets.token_urlsafe(64)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def database_config(url: str, *, conn_max_age: int = 0, connect_timeout: int = 5) -> dict[str, Any]:
    """A ``DATABASES`` entry from a URL (``sqlite:///path``, ``postgres://user@host:5432/db``).

    Persistent connections are health-checked before reuse; PostgreSQL connections get a
    connect timeout so a readiness probe fails fast instead of hanging.
    """
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
        )
    except ValueError as exc:  # unknown scheme etc.; never echo the URL, it may hold a password
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    options = config.setdefault("OPTIONS", {})
    if config["ENGINE"] == "django.db.backends.postgresql":
        options.setdefault("connect_timeout", connect_timeout)
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        # Local runs have several writers (gunicorn workers, the outbox relay): take the
        # write lock at BEGIN and wait for it, instead of failing with "database is locked"
        # when a read transaction tries to upgrade; WAL lets readers go on meanwhile.
        options.setdefault("timeout", 20)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;")
    return config
