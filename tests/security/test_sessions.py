"""Where the token comes from, and tokens whose session is over.

Token sources: kong/kong.yml leaves edge-jwt's defaults, the ``Authorization`` header only
(no cookie, no query parameter); a request carrying two *different* tokens is refused
(RFC 6750 §3.1 ``invalid_request``). Ended sessions: the backend announces every revocation
over Redis (backend/docs/revocation.md) and edge-jwt refuses the token within a second;
a deactivated account is refused by the backend even before any announcement.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.security.probes import (
    PROFILE,
    accepted_as,
    assert_edge_refused,
    assert_upstream_identity,
    auth,
    refused_everywhere,
    spoofed,
)
from tests.security.stack import Stack
from tests.support.backend import PASSWORD, User, login

# --- several sources ----------------------------------------------------------------------


def test_a_token_in_the_query_or_a_cookie_alone_is_no_token(
    stack: Stack, user: User, victim: User
) -> None:
    """Not a configured source: the request is token-less (the bare challenge)."""
    token = user.access_token
    for path, headers in (
        (f"{PROFILE}?access_token={token}", []),
        (PROFILE, [("Cookie", f"access_token={token}")]),
        (PROFILE, [("X-Access-Token", token)]),
        (PROFILE, [("Authorization", f"Basic {token}")]),
    ):
        since = len(stack.upstream.requests)
        response = stack.client.get(path, headers=[*headers, *spoofed(victim)])
        assert_edge_refused(response, 401, None)
        assert assert_upstream_identity(stack, since, None) == 0


@pytest.mark.parametrize("source", ["query", "cookie", "proxy-authorization"])
def test_another_users_token_in_a_second_source_changes_nothing(
    stack: Stack, user: User, victim: User, source: str
) -> None:
    """The header's token decides; the victim's token elsewhere is not read."""
    other = victim.access_token
    extra = {
        "query": [],
        "cookie": [("Cookie", f"access_token={other}; jwt={other}")],
        "proxy-authorization": [("Proxy-Authorization", f"Bearer {other}")],
    }[source]
    since = len(stack.upstream.requests)
    suffix = f"?access_token={other}&jwt={other}" if source == "query" else ""
    response = stack.client.get(
        f"{PROFILE}{suffix}", headers=[*auth(user.access_token), *extra, *spoofed(victim)]
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id
    tapped = stack.client.get(
        f"/sec-rec/probe{suffix}", headers=[*auth(user.access_token), *extra, *spoofed(victim)]
    )
    assert tapped.status_code == 200, tapped.text
    assert assert_upstream_identity(stack, since, user) == 1


# --- two Authorization headers ------------------------------------------------------------


def test_two_authorization_headers_with_different_tokens(
    stack: Stack, user: User, victim: User
) -> None:
    for first, second in (
        (user.access_token, victim.access_token),
        (victim.access_token, user.access_token),
    ):
        refused_everywhere(
            stack,
            [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")],
            victim,
            error="invalid_request",
        )


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("Bearer garbage.token.here", id="garbage"),
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer a b", id="two-words"),
    ],
)
def test_two_authorization_headers_one_of_them_bad(
    stack: Stack, user: User, victim: User, second: str
) -> None:
    for pair in (
        [("Authorization", f"Bearer {user.access_token}"), ("Authorization", second)],
        [("Authorization", second), ("Authorization", f"Bearer {user.access_token}")],
    ):
        since = len(stack.upstream.requests)
        for path in (PROFILE, "/sec-rec/probe"):
            response = stack.client.get(path, headers=[*pair, *spoofed(victim)])
            assert response.status_code == 401, response.text
        assert assert_upstream_identity(stack, since, None) == 0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer {a}, Bearer {b}", id="comma-joined"),
        pytest.param("Bearer {a} {b}", id="space-joined"),
        pytest.param("Bearer {a},{b}", id="comma-no-space"),
    ],
)
def test_two_tokens_in_one_header(stack: Stack, user: User, victim: User, value: str) -> None:
    header = value.format(a=user.access_token, b=victim.access_token)
    refused_everywhere(stack, [("Authorization", header)], victim)


def test_the_same_token_twice_is_one_token(stack: Stack, user: User, victim: User) -> None:
    twice = [("Authorization", f"Bearer {user.access_token}")] * 2
    accepted_as(stack, twice, user, victim)


def test_another_scheme_beside_the_bearer_is_not_a_token(
    stack: Stack, user: User, victim: User
) -> None:
    headers = [("Authorization", "Basic dTpw"), *auth(user.access_token)]
    accepted_as(stack, headers, user, victim)


# --- tokens that are not (or no longer) access tokens -------------------------------------


def test_refresh_token_as_access_token(stack: Stack, user: User, victim: User) -> None:
    refused_everywhere(stack, auth(user.refresh_token), victim)


def _refused_within_a_second(stack: Stack, token: str, victim: User) -> None:
    """Revocations reach edge-jwt over Redis Pub/Sub: allow it a second to hear."""
    deadline = time.monotonic() + 1.0
    while True:
        response = stack.client.get(PROFILE, headers=auth(token))
        if response.status_code == 401:
            break
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, "still accepted 1 s after the session ended"
        time.sleep(0.02)
    refused_everywhere(stack, auth(token), victim)


def test_token_after_logout(stack: Stack, fresh_user: User, victim: User) -> None:
    accepted_as(stack, auth(fresh_user.access_token), fresh_user, victim)
    out = stack.client.post(
        "/api/auth/logout",
        json={"refresh_token": fresh_user.refresh_token},
        headers=auth(fresh_user.access_token),
    )
    assert out.status_code == 204, out.text
    _refused_within_a_second(stack, fresh_user.access_token, victim)
    refresh = stack.client.post(
        "/api/auth/token/refresh", json={"refresh_token": fresh_user.refresh_token}
    )
    assert refresh.status_code == 401, refresh.text


def test_token_of_a_deactivated_user(stack: Stack, fresh_user: User, victim: User) -> None:
    """Deactivated in the database only (no revocation announced, as a direct SQL update
    or a failed Redis would leave it): the edge still passes the signed token, the
    backend refuses the identity, and the session cannot be refreshed or used to log in."""
    accepted_as(stack, auth(fresh_user.access_token), fresh_user, victim)
    with sqlite3.connect(stack.backend.dir / "db.sqlite3") as db:
        updated = db.execute(
            "UPDATE accounts_user SET is_active = 0 WHERE id = ?", (uuid.UUID(fresh_user.id).hex,)
        )
        assert updated.rowcount == 1
    profile = stack.client.get(PROFILE, headers=[*auth(fresh_user.access_token)])
    assert profile.status_code == 401, profile.text
    assert profile.json()["error"]["code"] == "not_authenticated"  # the backend's answer
    refresh = stack.client.post(
        "/api/auth/token/refresh", json={"refresh_token": fresh_user.refresh_token}
    )
    assert refresh.status_code == 401, refresh.text
    relogin = stack.client.post(
        "/api/auth/login", json={"email": fresh_user.email, "password": PASSWORD}
    )
    assert relogin.status_code == 401, relogin.text


def _reset_token(stack: Stack, email: str, timeout: float = 10) -> str:
    """The newest password reset code mailed to ``email`` (console email backend)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = stack.backend.log.read_text(errors="replace")
        blocks = [b for b in text.split("-" * 79) if f"To: {email}" in b]
        tokens = [m for b in blocks for m in re.findall(r"password reset token: (\S+)", b)]
        if tokens:
            return tokens[-1]
        time.sleep(0.05)
    raise AssertionError(f"no password reset email to {email}")


def test_token_after_a_password_change(stack: Stack, fresh_user: User, victim: User) -> None:
    asked = stack.client.post("/api/auth/password/reset", json={"email": fresh_user.email})
    assert asked.status_code == 202, asked.text
    confirmed = stack.client.post(
        "/api/auth/password/reset/confirm",
        json={"token": _reset_token(stack, fresh_user.email), "new_password": PASSWORD + "-2"},
    )
    assert confirmed.status_code == 200, confirmed.text
    _refused_within_a_second(stack, fresh_user.access_token, victim)
    refresh = stack.client.post(
        "/api/auth/token/refresh", json={"refresh_token": fresh_user.refresh_token}
    )
    assert refresh.status_code == 401, refresh.text
    old = stack.client.post(
        "/api/auth/login", json={"email": fresh_user.email, "password": PASSWORD}
    )
    assert old.status_code == 401, old.text


def test_refresh_token_reuse_revokes_the_family(
    stack: Stack, fresh_user: User, victim: User
) -> None:
    """RFC 9700 §4.14.2: a rotated refresh token presented again means a copy exists; the
    whole family ends — the thief's new pair and the owner's access tokens too."""
    refresh: Callable[[str], httpx.Response] = lambda token: stack.client.post(  # noqa: E731
        "/api/auth/token/refresh", json={"refresh_token": token}
    )
    first = refresh(fresh_user.refresh_token)
    assert first.status_code == 200, first.text
    rotated = first.json()
    accepted_as(stack, auth(rotated["access_token"]), fresh_user, victim)

    reused = refresh(fresh_user.refresh_token)
    assert reused.status_code == 401, reused.text
    assert refresh(rotated["refresh_token"]).status_code == 401
    _refused_within_a_second(stack, rotated["access_token"], victim)
    _refused_within_a_second(stack, fresh_user.access_token, victim)
    # Another session of the same user is untouched.
    other = login(stack.client, fresh_user.email)
    accepted_as(stack, auth(other["access_token"]), fresh_user, victim)
