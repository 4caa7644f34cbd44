"""``/internal/``, ``/admin/`` and the metrics are unreachable through the gateway.

kong/kong.yml routes only ``/api/auth/…`` prefixes; the backend serves its internal API and
admin on a second listener and its metrics on a third, each chosen by the port a connection
arrived on, never by path or Host (backend/src/auth_backend/core/listeners.py). Kong routes
on the path as kong/tools/uri.lua ``normalize`` leaves it: percent-encoded unreserved
characters decoded (``%2e`` is a dot, ``%69`` an ``i``), reserved ones kept encoded (``%2F``
stays ``%2F``), dot segments removed, ``//`` merged; ``;`` and ``\\`` are ordinary
characters. So a trick either normalises to a path no route matches (Kong's 404), stays
under a routed prefix and reaches the public listener, which has no such page (the
backend's 404), lands on a protected route without a token (the edge's 401), or holds an
encoded ``/`` or ``\\``, which the edge refuses on every route (400, test_routes.py).

Requests are written byte for byte on a socket: an HTTP client would normalise them first.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.security.probes import raw_exchange, raw_request, statuses
from tests.security.stack import Stack

HOST = [("Host", "127.0.0.1"), ("Connection", "close")]

# What each hidden endpoint answers with when asked on its own listener (the controls).
MARKERS = (b"# HELP", b"# TYPE", b"Django administration", b"csrfmiddlewaretoken", b'"users"')

TARGETS = {
    "internal": "/internal/auth/validate-token",
    "internal-users": "/internal/auth/users/batch",
    "admin": "/admin/",
    "admin-login": "/admin/login/",
    "metrics": "/metrics",
    "metrics-api-path": "/api/auth/metrics",
    "kong-status": "/status",
}

TRICKS = {
    "plain": "{t}",
    "dot-segments": "/api/auth/health/../../..{t}",
    "dot-segments-from-profile": "/api/auth/profile/../../..{t}",
    "encoded-dots": "/api/auth/health/%2e%2e/%2e%2e/%2e%2e{t}",
    "encoded-dots-upper": "/api/auth/health/%2E%2E/%2E%2E/%2E%2E{t}",
    "encoded-slashes": "/api/auth/health/..%2f..%2f..{te}",
    "encoded-dots-and-slashes": "/api/auth/health/%2e%2e%2f%2e%2e%2f%2e%2e{te}",
    "double-encoded": "/api/auth/health/%252e%252e/%252e%252e/%252e%252e{t}",
    "encoded-letter": "/%69{t1}",
    "double-slash": "/{t}",
    "double-slash-inside": "/api/auth/health//..//..//..{t}",
    "upper-case": "{tu}",
    "mixed-case-prefix": "/API/AUTH/health/../../..{t}",
    "semicolon-parameter": "/api/auth/health;x=1/../../..{t}",
    "semicolon-dot-segments": "/api/auth/health/..;/..;/..;{t}",
    "semicolon-suffix": "{t};.css",
    "backslashes": "/api/auth/health/..\\..\\..{tb}",
    "encoded-backslashes": "/api/auth/health/..%5c..%5c..{t5c}",
    "static-traversal": "/api/auth/static/..%2f..%2f..{te}",
    "schema-traversal": "/api/auth/schema/%2e%2e/%2e%2e/%2e%2e{t}",
    "nul-byte": "/api/auth/health%00/../../..{t}",
    "fragment": "/api/auth/health#/../../..{t}",
}


def _target(trick: str, target: str) -> str:
    return TRICKS[trick].format(
        t=target,
        te=target.replace("/", "%2f"),
        t1=target[2:],
        tu=target.upper(),
        tb=target.replace("/", "\\"),
        t5c=target.replace("/", "%5c"),
    )


@pytest.fixture(scope="module")
def controls(stack: Stack) -> None:
    """The markers are what the hidden listeners really answer with."""
    backend = stack.backend
    for port, path in (
        (backend.internal_port, "/admin/login/"),
        (backend.metrics_port, "/metrics"),
        (backend.metrics_port, "/api/auth/metrics"),
    ):
        answer = raw_exchange(port, raw_request(path, HOST))
        assert statuses(answer)[:1] == [200], answer[:300]
        assert any(marker in answer for marker in MARKERS), answer[:300]


def _assert_hidden(answer: bytes) -> None:
    codes = statuses(answer)
    assert codes and codes[0] in (400, 401, 404), answer[:400]
    assert not any(marker in answer for marker in MARKERS), answer[:400]


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("target", TARGETS)
def test_hidden_endpoints_through_path_tricks(
    stack: Stack, controls: None, target: str, trick: str
) -> None:
    path = _target(trick, TARGETS[target])
    since = len(stack.upstream.requests)
    answer = raw_exchange(stack.port, raw_request(path, HOST))
    _assert_hidden(answer)
    assert len(stack.upstream.requests) == since


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "host",
    [
        pytest.param("internal", id="absolute-form-internal-port"),
        pytest.param("metrics", id="absolute-form-metrics-port"),
        pytest.param("localhost", id="absolute-form-localhost"),
    ],
)
def test_absolute_form_targets(stack: Stack, controls: None, target: str, host: str) -> None:
    """RFC 9112 §3.2.2: the absolute-form's authority replaces Host; the path is still
    routed by Kong, and Kong proxies to the route's service, never to the named port."""
    port = {
        "internal": stack.backend.internal_port,
        "metrics": stack.backend.metrics_port,
        "localhost": 80,
    }[host]
    uri = f"http://127.0.0.1:{port}{TARGETS[target]}"
    answer = raw_exchange(stack.port, raw_request(uri, HOST))
    _assert_hidden(answer)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda s: [("Host", f"127.0.0.1:{s.backend.internal_port}")], id="host-port"),
        pytest.param(
            lambda s: [("Host", f"127.0.0.1:{s.backend.metrics_port}")], id="host-metrics"
        ),
        pytest.param(
            lambda s: [("Host", "localhost"), ("X-Forwarded-Host", "127.0.0.1:8081")],
            id="forwarded-host",
        ),
        pytest.param(
            lambda s: [
                ("Host", "127.0.0.1"),
                ("X-Original-URL", "/admin/"),
                ("X-Rewrite-URL", "/admin/"),
            ],
            id="rewrite-headers",
        ),
        pytest.param(lambda s: [("Host", "127.0.0.1@127.0.0.1:8081")], id="host-userinfo"),
    ],
)
def test_host_tricks(
    stack: Stack, controls: None, target: str, headers: Callable[[Stack], list[tuple[str, str]]]
) -> None:
    answer = raw_exchange(
        stack.port, raw_request(TARGETS[target], [*headers(stack), ("Connection", "close")])
    )
    _assert_hidden(answer)


@pytest.mark.parametrize("trick", ["dot-segments", "encoded-slashes", "semicolon-dot-segments"])
def test_the_same_tricks_on_a_public_path_reach_only_the_public_listener(
    stack: Stack, trick: str
) -> None:
    """Through the routed public prefix to the tap: what the upstream receives is the
    normalised path, under the route — not a path of another listener."""
    path = _target(trick, "/internal/auth/users/batch").replace("/api/auth/health", "/sec-open/x")
    since = len(stack.upstream.requests)
    answer = raw_exchange(stack.port, raw_request(path, HOST))
    codes = statuses(answer)
    if codes[0] == 200:
        (record,) = stack.upstream.requests[since:]
        assert not record["path"].startswith("/internal"), record["path"]
    elif codes[0] == 400:  # an encoded "/" or "\": the edge refuses it (test_routes.py)
        assert "%2f" in path.lower() or "%5c" in path.lower(), path
        assert len(stack.upstream.requests) == since
    else:
        assert codes[0] == 404 and len(stack.upstream.requests) == since


def test_control_an_absolute_form_target_is_routed_by_its_path(stack: Stack) -> None:
    """nginx routes an absolute-form request on its path (``$request_uri``) and takes the
    host from it (src/http/ngx_http_parse.c): a routed path is proxied as usual."""
    since = len(stack.upstream.requests)
    uri = f"http://127.0.0.1:{stack.backend.internal_port}/sec-open/abs?q=1"
    answer = raw_exchange(stack.port, raw_request(uri, HOST))
    assert statuses(answer) == [200], answer[:300]
    (record,) = stack.upstream.requests[since:]
    assert record["path"] == "/abs?q=1"
