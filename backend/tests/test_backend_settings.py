"""Settings from the environment: secret key rules, booleans, database URLs."""

from __future__ import annotations

import os
import runpy
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

import auth_backend.settings
from auth_backend.core.env import database_config, env_bool, env_list, load_secret_key

BACKEND_DIR = Path(__file__).resolve().parents[2] / "backend"


def _run_settings() -> dict:
    """Execute a fresh copy of the settings module (the loaded one is left alone)."""
    return runpy.run_path(auth_backend.settings.__file__)


def test_settings_refuse_to_load_without_secret_when_debug_is_off(monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)  # default: off

    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        _run_settings()


def test_manage_py_refuses_to_start_without_secret_when_debug_is_off(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env["DJANGO_DEBUG"] = "0"

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BACKEND_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-env-" + "s3cr3t" * 10)
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "backend, api.example.com ,")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db:5432/auth")
    monkeypatch.setenv("SERVICE_NAME", "auth-backend-test")

    module = _run_settings()

    assert module["DEBUG"] is False
    assert module["SECRET_KEY"] == "from-env-" + "s3cr3t" * 10
    assert module["ALLOWED_HOSTS"] == ["backend", "api.example.com"]
    assert module["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert module["DATABASES"]["default"]["NAME"] == "auth"
    assert module["SERVICE_NAME"] == "auth-backend-test"
    assert module["LOGGING"]["formatters"]["json"]["service"] == "auth-backend-test"


def test_settings_defaults(monkeypatch):
    for name in ("DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)

    module = _run_settings()

    assert module["DEBUG"] is False
    assert module["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert module["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(module["DATABASES"]["default"]["NAME"]) == BACKEND_DIR / "db.sqlite3"
    assert module["SERVICE_NAME"] == "auth-backend"


def test_debug_generates_a_private_key_file_once(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    key_file = tmp_path / ".keys" / "secret_key"

    first = load_secret_key(debug=True, key_file=key_file)
    second = load_secret_key(debug=True, key_file=key_file)

    assert first == second
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def test_environment_secret_wins_over_the_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-the-environment")
    key_file = tmp_path / "secret_key"

    assert load_secret_key(debug=True, key_file=key_file) == "from-the-environment"
    assert not key_file.exists()


def test_debug_off_never_reads_the_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    key_file = tmp_path / "secret_key"
    key_file.write_text("a-local-development-key")

    with pytest.raises(ImproperlyConfigured):
        load_secret_key(debug=False, key_file=key_file)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)

    assert env_bool("SOME_FLAG") is expected


def test_env_bool_rejects_typos(monkeypatch):
    monkeypatch.setenv("DJANGO_DEBUG", "ture")

    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG"):
        env_bool("DJANGO_DEBUG")


def test_env_list(monkeypatch):
    monkeypatch.setenv("HOSTS", " a, b ,,c ")

    assert env_list("HOSTS") == ["a", "b", "c"]


def test_database_config_postgres_gets_connect_timeout_and_health_checks():
    config = database_config("postgres://u:p@db:5432/auth", conn_max_age=60, connect_timeout=3)

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["USER"], config["NAME"]) == (
        "db",
        5432,
        "u",
        "auth",
    )
    assert config["OPTIONS"]["connect_timeout"] == 3
    assert config["CONN_MAX_AGE"] == 60
    assert config["CONN_HEALTH_CHECKS"] is True


def test_database_config_sqlite():
    config = database_config("sqlite:////tmp/x/db.sqlite3")

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/tmp/x/db.sqlite3"


def test_bad_database_url_does_not_echo_the_password():
    with pytest.raises(ImproperlyConfigured) as info:
        database_config("nosuchdb://user:s3cret-pw@host/db")

    assert "s3cret-pw" not in str(info.value)
