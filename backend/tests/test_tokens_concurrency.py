"""Concurrent use of one refresh token, against the real PostgreSQL.

SQLite ignores ``SELECT … FOR UPDATE``, so the row-lock protocol is only meaningful on
PostgreSQL. The fixture creates a throw-away database on the server of ``postgres_url``,
points Django's ``default`` connection at it for this test (every thread opens its own
connection from the same settings), migrates it, and drops it afterwards.
"""

from __future__ import annotations

import threading
from typing import Any

import jwt
import pytest
from concurrency_support import race
from django.utils import timezone

from auth_backend.accounts.models import User
from auth_backend.tokens.exceptions import InvalidRefreshToken
from auth_backend.tokens.models import RefreshFamily
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.rotation import rotate_refresh_token

THREADS = 8


@pytest.mark.postgres
def test_concurrent_double_use_gives_exactly_one_success_then_revokes(postgres_default):
    user = User.objects.create_user("concurrent@example.com", email_verified_at=timezone.now())
    for _round in range(3):
        pair = issue_token_pair(user)
        results = race(lambda _i, token=pair.refresh_token: rotate_refresh_token(token), THREADS)

        successes = [r for r in results if not isinstance(r, BaseException)]
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(successes) == 1, results
        assert all(isinstance(f, InvalidRefreshToken) for f in failures), failures
        assert len(failures) == THREADS - 1

        # the losers counted as reuse: the family is revoked, the winner's token is dead too
        sid = jwt.decode(pair.access_token, options={"verify_signature": False})["sid"]
        family = RefreshFamily.objects.get(pk=sid)
        assert family.revoke_reason == "reuse"
        with pytest.raises(InvalidRefreshToken):
            rotate_refresh_token(successes[0].refresh_token)
        assert family.tokens.filter(used_at__isnull=False).count() == 1


@pytest.mark.postgres
def test_concurrent_rotation_of_different_sessions_do_not_interfere(postgres_default):
    users = [User.objects.create_user(f"u{i}@example.com") for i in range(THREADS)]
    pairs = iter([issue_token_pair(u) for u in users])
    lock = threading.Lock()

    def rotate_own() -> Any:
        with lock:
            pair = next(pairs)
        return rotate_refresh_token(pair.refresh_token)

    results = race(lambda _i: rotate_own(), THREADS)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert RefreshFamily.objects.filter(revoked_at__isnull=False).count() == 0


@pytest.mark.postgres
def test_first_use_key_creation_races_to_a_single_current_key(postgres_default):
    from auth_backend.tokens.models import SigningKey, SigningKeyState

    user = User.objects.create_user("keys@example.com")
    results = race(lambda _i: issue_token_pair(user), THREADS)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert SigningKey.objects.filter(state=SigningKeyState.CURRENT).count() == 1
    kids = {jwt.get_unverified_header(r.access_token)["kid"] for r in results}
    assert kids == {SigningKey.objects.get(state=SigningKeyState.CURRENT).kid}
