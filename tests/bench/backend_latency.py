"""Backend latency of the two calls the auth issue asks about: login and profile.

In-process (Django's test client, no HTTP and no gateway), on a throwaway SQLite database,
so the figures are the application's own cost: login is dominated by Argon2id, profile by
verifying the gateway's EdDSA identity assertion and one primary-key query.

    make bench      # or: python -m tests.bench.backend_latency --logins 30 --profiles 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--profiles", type=int, default=300)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="auth_backend.settings",
        DJANGO_SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:1/0",  # events stay in the outbox; no relay here
        LOG_LEVEL="WARNING",
        GUNICORN_ACCESS_LOG="0",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from auth_backend.accounts.models import User
    from tests.backend.identity import identity_headers, write_gateway_jwks

    call_command("migrate", verbosity=0, interactive=False)
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GATEWAY_JWKS = str(write_gateway_jwks(workdir / "gateway-jwks.json"))
    password = "correct-horse-battery-9"
    user = User.objects.create_user("bench@example.com", password, email_verified_at=timezone.now())
    client = Client()

    def timed(call, n: int) -> list[float]:
        out = []
        for _ in range(n):
            started = time.perf_counter()
            response = call()
            out.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
        return out

    credentials = {"email": user.email, "password": password}
    login = timed(
        lambda: client.post("/api/auth/login", credentials, content_type="application/json"),
        args.logins,
    )
    headers = identity_headers(user)
    profile = timed(lambda: client.get("/api/auth/profile", **headers), args.profiles)
    for name, values in (("login (Argon2id)", login), ("profile GET", profile)):
        print(
            f"{name:<18} n={len(values):<4} median {statistics.median(values):7.2f} ms   "
            f"p90 {statistics.quantiles(values, n=10)[-1]:7.2f} ms"
        )


if __name__ == "__main__":
    main()
