"""No client learns the backend's server software (``Server: gunicorn``).

gunicorn writes its name on every response, and Kong passes an upstream's ``Server`` header
on (``proxy_pass_header Server``, kong/templates/nginx_kong.lua); the backend drops it
(backend/gunicorn.conf.py), so through the gateway the client sees Kong's own
(kong/runloop/handler.lua header_filter adds it when the upstream sent none).
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.probes import auth, raw_exchange, raw_request
from tests.security.stack import Stack
from tests.support.backend import User

PATHS = ["/api/auth/health/live", "/api/auth/profile", "/api/auth/profile/no-such-page"]


@pytest.mark.parametrize("path", PATHS)
def test_through_the_gateway_server_is_kongs(stack: Stack, user: User, path: str) -> None:
    response = stack.client.get(path, headers=auth(user.access_token))
    assert response.headers["x-kong-upstream-latency"]  # the backend answered it
    assert response.headers.get_list("server") == ["kong/3.9.3"], response.headers


@pytest.mark.parametrize("path", PATHS)
def test_the_backend_sends_no_server_header(stack: Stack, path: str) -> None:
    response = httpx.get(stack.backend.url + path, timeout=30)
    assert response.status_code in (200, 401, 404), response.text
    assert "server" not in response.headers, response.headers


def test_not_on_the_backends_own_error_answers(stack: Stack) -> None:
    """gunicorn's own 400 (a request line it cannot parse) carries none either."""
    answer = raw_exchange(stack.backend.port, raw_request("/x y", [("Host", "a")]))
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400"), answer[:200]
    assert b"\r\nserver:" not in head, head
