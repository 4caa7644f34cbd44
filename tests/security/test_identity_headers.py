"""Identity headers the client writes itself never reach an upstream.

Kong runs with ``underscores_in_headers on`` (kong/templates/nginx_kong.lua), so
``X-User_Id`` reaches the plugins and the upstream, where WSGI folds it onto
``HTTP_X_USER_ID``: edge-jwt strips every variant (docs/identity-assertion.md). It sees the
first 1000 header lines only (kong.request.get_headers(1000), kong/pdk/request.lua), and
nginx refuses line 1001 (Kong's max_headers patch, answered by kong/error_handlers.lua).
"""

from __future__ import annotations

import http.client

import pytest

from tests.security.probes import (
    PROFILE,
    TAP,
    TAP_OPEN,
    assert_upstream_identity,
    auth,
    spoofed,
)
from tests.security.stack import Stack
from tests.support.backend import User

NAMES = [
    "X-User-Id",
    "x-user-id",
    "X-USER-ID",
    "X-uSeR-iD",
    "X-User_Id",
    "X_User_Id",
    "x_user_id",
    "X_USER-ID",
    "X-User-Email",
    "X_User_Email",
    "X-User-Roles",
    "x_user_roles",
    "X-User-Scopes",
    "X-USER_SCOPES",
    "X-Identity-Assertion",
    "x-identity_assertion",
    "X_IDENTITY_ASSERTION",
    "X-User-Anything",
    "X-User-",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "with-token"])
def test_every_case_and_underscore_variant_is_stripped(
    stack: Stack, user: User, victim: User, name: str, authenticated: bool
) -> None:
    headers = [(name, victim.id if "id" in name.lower() else "staff")]
    since = len(stack.upstream.requests)
    if authenticated:
        response = stack.client.get(TAP, headers=[*headers, *auth(user.access_token)])
    else:
        response = stack.client.get(TAP_OPEN, headers=headers)
    assert response.status_code == 200, response.text
    assert assert_upstream_identity(stack, since, user if authenticated else None) == 1


def test_variants_do_not_void_or_change_the_backend_identity(
    stack: Stack, user: User, victim: User
) -> None:
    """All variants at once, claiming the victim: the backend serves the token's owner."""
    headers = [(name, victim.id) for name in NAMES]
    response = stack.client.get(PROFILE, headers=[*headers, *auth(user.access_token)])
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id
    anonymous = stack.client.get(PROFILE, headers=headers)
    assert anonymous.status_code == 401  # the edge's: no token


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "with-token"])
def test_duplicated_identity_headers(
    stack: Stack, user: User, victim: User, authenticated: bool
) -> None:
    duplicated = [*spoofed(victim), *spoofed(victim), ("X-User-Id", user.id)]
    since = len(stack.upstream.requests)
    if authenticated:
        response = stack.client.get(TAP, headers=[*duplicated, *auth(user.access_token)])
    else:
        response = stack.client.get(TAP_OPEN, headers=duplicated)
    assert response.status_code == 200, response.text
    assert assert_upstream_identity(stack, since, user if authenticated else None) == 1


@pytest.mark.parametrize("position", [101, 150, 997])
@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "with-token"])
def test_identity_header_past_the_hundredth(
    stack: Stack,
    user: User,
    victim: User,
    monkeypatch: pytest.MonkeyPatch,
    position: int,
    authenticated: bool,
) -> None:
    """Kong's get_headers() default stops at 100; edge-jwt asks for all 1000. Line 997 is
    the last that passes: edge-trace, which runs first, adds ``traceparent`` and
    ``X-Request-ID`` (kong.service.request.set_header changes the request headers
    get_headers reads), and at 1000 lines edge-jwt cannot know there are no more, so it
    refuses (431, fail closed)."""
    monkeypatch.setattr(http.client, "_MAXHEADERS", 2000)  # the tap's own limit
    token = auth(user.access_token) if authenticated else []
    base = len(stack.client.build_request("GET", TAP).headers.raw) + len(token) + 1  # X-Real-IP
    filler = [(f"X-Filler-{i}", "x") for i in range(position - base - 1)]
    headers = [*token, *filler, ("X-User-Id", victim.id)]
    since = len(stack.upstream.requests)
    response = stack.client.get(TAP if authenticated else TAP_OPEN, headers=headers)
    assert response.status_code == 200, response.text
    assert assert_upstream_identity(stack, since, user if authenticated else None) == 1
    last_filler = f"x-filler-{len(filler) - 1}"
    assert any(k.lower() == last_filler for k, _ in stack.upstream.last["headers"])


@pytest.mark.parametrize("lines", [1001, 1200])
def test_identity_header_past_line_1000_is_refused(
    stack: Stack, victim: User, monkeypatch: pytest.MonkeyPatch, lines: int
) -> None:
    monkeypatch.setattr(http.client, "_MAXHEADERS", 2000)
    base = len(stack.client.build_request("GET", TAP_OPEN).headers.raw) + 1  # X-Real-IP
    filler = [(f"h{i}", "x") for i in range(lines - base - 1)]
    since = len(stack.upstream.requests)
    response = stack.client.get(TAP_OPEN, headers=[*filler, ("X-User-Id", victim.id)])
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "Request header or cookie too large"
    assert assert_upstream_identity(stack, since, None) == 0


NEIGHBOURS = {
    "latin1-before": [(b"X-Junk", b"caf\xe9"), (b"X-User-Id", b"VICTIM")],
    "invalid-utf8-before": [(b"X-Junk", b"\xff\xfe\xfd"), (b"X-User-Id", b"VICTIM")],
    "invalid-utf8-after": [(b"X-User-Id", b"VICTIM"), (b"X-Junk", b"\xc3\x28")],
    "invalid-utf8-value": [(b"X-User-Id", b"VICTIM\xff")],
    "invalid-utf8-underscore": [(b"X-Junk", b"\x80"), (b"X_User_Id", b"VICTIM")],
    "overlong-utf8": [(b"X-Junk", b"\xc0\xaf"), (b"X-Identity-Assertion", b"e30.e30.\xc0\xaf")],
}


@pytest.mark.parametrize("case", NEIGHBOURS)
@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "with-token"])
def test_identity_headers_with_non_utf8_neighbours(
    stack: Stack, user: User, victim: User, case: str, authenticated: bool
) -> None:
    """Header values are bytes (RFC 9110 §5.5 obs-text); a value that is not UTF-8 must not
    make edge-jwt skip the headers around it (or fail open)."""
    headers = [(k, v.replace(b"VICTIM", victim.id.encode())) for k, v in NEIGHBOURS[case]]
    token = [(b"Authorization", f"Bearer {user.access_token}".encode())] if authenticated else []
    since = len(stack.upstream.requests)
    response = stack.client.get(TAP if authenticated else TAP_OPEN, headers=[*token, *headers])
    assert response.status_code == 200, response.text
    assert assert_upstream_identity(stack, since, user if authenticated else None) == 1
    junk = [v for k, v in stack.upstream.last["headers"] if k.lower() == "x-junk"]
    assert len(junk) == (1 if any(k == b"X-Junk" for k, _ in headers) else 0)
