"""An oversized request body is Kong's 413 before any plugin server or the backend sees it.

kong/kong.conf ``nginx_http_client_max_body_size = 64k`` (nginx ``client_max_body_size``;
Kong's default is no limit). Before it, a 3 MB body reached the backend (gunicorn/Django's
400) and 4 MB a 502. A declared length over the limit is refused when nginx picks the
location, before the plugins run; a chunked body when it is read to be proxied
(docs/kong-compatibility.md; kong/harness/tests/test_body_size.py pins the harness to Kong).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.probes import TAP_OPEN
from tests.security.stack import Stack
from tests.security.views import observe

LIMIT = 64 * 1024


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 4096):
        yield b" " * 4096


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * 1024 * 1024, 4 * 1024 * 1024])
def test_an_oversized_body_is_kongs_413(stack: Stack, size: int) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"x" * size + b'"}'
    response, seen = observe(
        stack,
        "POST",
        lambda: stack.client.post(
            "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
        ),
        lambda _: False,  # refused before the router: no route is counted
    )
    assert response.status_code == 413, response.text
    assert response.json() == {
        "message": "Payload too large",
        "request_id": response.headers["x-kong-request-id"],
    }
    assert "x-request-id" not in response.headers  # edge-trace, the first plugin, never ran
    assert seen.views == {} and seen.routes == {}, seen


def test_a_chunked_oversized_body_never_reaches_the_upstream(stack: Stack) -> None:
    since = len(stack.upstream.requests)
    response = stack.client.post(TAP_OPEN, content=_chunks(2 * LIMIT))
    assert response.status_code == 413, response.text
    assert response.json()["message"] == "Payload too large"
    assert stack.upstream.requests[since:] == []


def test_a_body_at_the_limit_is_proxied(stack: Stack) -> None:
    since = len(stack.upstream.requests)
    response = stack.client.post(TAP_OPEN, content=b"x" * LIMIT)
    assert response.status_code == 200, response.text
    assert len(stack.upstream.requests) == since + 1
