"""The route the edge matched decides the view the backend runs (docs/architecture.md).

Two ways a request used to reach another view than its route's, under the route's limits:

* a header that sets the backend's script name: gunicorn maps a ``SCRIPT_NAME`` header
  from a peer in ``forwarded_allow_ips`` (loopback by default, where the gateway sits in
  ``make run``) onto the WSGI ``SCRIPT_NAME`` and cuts it off the path, and Kong forwards
  header names with underscores (``underscores_in_headers on``,
  kong/templates/nginx_kong.lua). The backend no longer honours it (``forwarder_headers``
  empty, backend/gunicorn.conf.py) and the edge clears every CGI-shaped header on every
  route (edge-jwt; docs/architecture.md);
* an encoded ``/`` or ``\\`` in the path: Kong routes on the path with ``%2F`` kept encoded
  (kong/tools/uri.lua ``normalize``) while the backend's server decodes it, so
  ``/api/auth/login%2F2fa`` was routed as ``login`` and ran ``login/2fa``. The edge refuses
  such a path (400) on every route.

What the edge matched and what the backend ran are read from their metrics (views.py).
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.probes import TAP_OPEN, auth
from tests.security.stack import Stack
from tests.security.test_tokens import claims_for
from tests.security.views import ROUTE_VIEWS, kong_routes, observe, request_path
from tests.support.backend import User

LOGIN = "/api/auth/login"
HEALTH = "/api/auth/health"
SCRIPT_NAME_HEADERS = ["SCRIPT_NAME", "script_name", "Script_Name"]

#: Headers a CGI-style server or a framework reads as its script name or path.
CGI_SHAPED = [
    ("SCRIPT_NAME", "/sec-open"),
    ("script-name", "/sec-open"),
    ("PATH_INFO", "/other"),
    ("Path-Info", "/other"),
    ("REQUEST_URI", "/other"),
    ("SCRIPT_URL", "/other"),
    ("REDIRECT_URL", "/other"),
    ("X-Original-URL", "/other"),
    ("X_Rewrite_URL", "/other"),
    ("X-Script-Name", "/sec-open"),
]


def _is_cgi_shaped(name: str) -> bool:
    folded = name.lower().replace("_", "-")
    return folded in {n.lower().replace("_", "-") for n, _ in CGI_SHAPED}


def staff_token(stack: Stack, user: User) -> str:
    """An access token with the staff role (the edge's check for the decision route)."""
    return stack.issuer.mint(claims_for(user, roles=["user", "staff"]))


def _routed(response: httpx.Response) -> bool:
    return response.status_code != 404 or "no Route matched" not in response.text


# --- a header picks the view ----------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPT_NAME_HEADERS)
def test_script_name_header_does_not_reach_login_under_the_health_route(
    stack: Stack, user: User, name: str
) -> None:
    """``POST /api/auth/health/api/auth/login`` + ``SCRIPT_NAME: /api/auth/health``: routed
    as the public health route (its limit), it must not run the login view."""
    response, seen = observe(
        stack,
        "POST",
        lambda: stack.client.post(
            HEALTH + LOGIN,
            headers={name: HEALTH},
            json={"email": user.email, "password": "wrong-password"},
        ),
        _routed,
    )
    assert seen.routes == {"auth-public": 1}, seen
    assert seen.ran <= ROUTE_VIEWS["auth-public"], seen
    assert response.status_code == 404, response.text  # no health view of that name


@pytest.mark.parametrize(
    ("route", "path", "target"),
    [
        ("auth-login", LOGIN, "/api/auth/2fa/disable"),
        ("auth-profile", "/api/auth/profile", request_path(*ROUTE_VIEWS["auth-seller-decision"])),
    ],
)
def test_script_name_header_does_not_reach_another_protected_view(
    stack: Stack, user: User, route: str, path: str, target: str
) -> None:
    """The same trick with a staff token: ``2fa/disable`` under login's route, a seller
    decision under the profile route."""
    token = staff_token(stack, user)
    response, seen = observe(
        stack,
        "POST",
        lambda: stack.client.post(
            path + target, headers=[("SCRIPT_NAME", path), *auth(token)], json={}
        ),
        _routed,
    )
    assert seen.routes == {route: 1}, seen
    assert seen.ran <= ROUTE_VIEWS[route], seen
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("name", SCRIPT_NAME_HEADERS)
def test_backend_ignores_script_name_from_loopback(stack: Stack, user: User, name: str) -> None:
    """Straight to the backend's public listener from loopback (in ``forwarded_allow_ips``
    by default): gunicorn takes no script name from a header (``forwarder_headers`` empty),
    so the path alone picks the view, whatever the edge in front does."""
    response, seen = observe(
        stack,
        "POST",
        lambda: httpx.post(
            stack.backend.url + HEALTH + LOGIN,
            headers={name: HEALTH},
            json={"email": user.email, "password": "wrong-password"},
            timeout=30,
        ),
        lambda _: False,
    )
    assert response.status_code == 404, response.text
    assert seen.ran == set(), seen


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "with-token"])
def test_cgi_shaped_headers_never_reach_an_upstream(
    stack: Stack, user: User, authenticated: bool
) -> None:
    """Every CGI-shaped header, in case and ``_``/``-`` variants, is cleared by the edge
    on every route, so no upstream (whatever server it runs) can take its path from one."""
    since = len(stack.upstream.requests)
    path = "/sec-rec/probe" if authenticated else TAP_OPEN
    token = auth(user.access_token) if authenticated else []
    response = stack.client.get(path, headers=[*CGI_SHAPED, *token, ("X-Kept", "1")])
    assert response.status_code == 200, response.text
    (record,) = stack.upstream.requests[since:]
    names = [k for k, _ in record["headers"]]
    assert [n for n in names if _is_cgi_shaped(n)] == [], names
    assert "x-kept" in [n.lower() for n in names]  # the control: other headers pass


# --- encoded slashes ------------------------------------------------------------------------


def test_encoded_slash_does_not_reach_login_2fa_under_the_login_route(
    stack: Stack, user: User
) -> None:
    """``POST /api/auth/login%2F2fa`` was routed, limited and counted as ``login`` while
    the backend decoded it and ran ``login/2fa``: the edge refuses it."""
    response, seen = observe(
        stack,
        "POST",
        lambda: stack.client.post(
            "/api/auth/login%2F2fa", json={"challenge": "x", "code": "000000"}
        ),
        _routed,
    )
    assert seen.ran == set(), seen
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "request_id"}, response.text
    assert response.headers["content-type"].startswith("application/json")


def _every_route_path() -> list[tuple[str, str]]:
    out = []
    for name, paths in kong_routes().items():
        for path in paths:
            if path.startswith("~"):  # the decision route's regex: a path it matches
                path = request_path(*ROUTE_VIEWS[name]).rsplit("/decision", 1)[0]
            out.append((name, path))
    return out


@pytest.mark.parametrize("encoded", ["%2F", "%2f", "%5C", "%5c"])
@pytest.mark.parametrize(("route", "path"), _every_route_path())
def test_encoded_slash_is_refused_on_every_route(
    stack: Stack, user: User, route: str, path: str, encoded: str
) -> None:
    """One rule on every route of kong/kong.yml (with a token that every route accepts): a
    path with an encoded ``/`` or ``\\`` is Kong's 400 JSON error, and no view runs."""
    token = staff_token(stack, user)
    suffix = "/decision" if route == "auth-seller-decision" else ""
    target = f"{path}{encoded}x{suffix}"
    response, seen = observe(
        stack, "OPTIONS", lambda: stack.client.options(target, headers=auth(token)), _routed
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "request_id"}, response.text
    assert seen.views == {}, seen


@pytest.mark.parametrize("encoded", ["%2F", "%5c"])
def test_backend_refuses_an_encoded_slash_without_the_edge(
    stack: Stack, user: User, encoded: str
) -> None:
    """Straight to the backend's public listener, as a request Kong proxies while edge-jwt's
    plugin server is down: the backend itself refuses the path (auth_backend/core/paths.py)
    instead of running ``login/2fa`` for ``login%2F2fa``."""
    response, seen = observe(
        stack,
        "POST",
        lambda: httpx.post(
            f"{stack.backend.url}/api/auth/login{encoded}2fa",
            json={"challenge": "x", "code": "000000"},
            timeout=30,
        ),
        lambda _: False,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "encoded_path_separator"
    assert seen.ran == set(), seen


@pytest.mark.parametrize("path", ["/sec-open/a%2Fb", "/sec-open/a%5cb", "/sec-open%2f..%2fx"])
def test_encoded_slash_never_reaches_the_tap(stack: Stack, path: str) -> None:
    since = len(stack.upstream.requests)
    response = stack.client.get(path)
    assert response.status_code == 400, response.text
    assert stack.upstream.requests[since:] == []


def test_double_encoded_slash_is_not_a_slash(stack: Stack, user: User) -> None:
    """``%252F`` reaches the backend as the text ``%2F``: no view matches it (404), and the
    edge lets it through (the backend reads it as the edge routed it)."""
    response, seen = observe(
        stack, "OPTIONS", lambda: stack.client.options("/api/auth/login%252F2fa"), _routed
    )
    assert seen.routes == {"auth-login": 1}, seen
    assert seen.views == {"unmatched": 1}, seen
    assert response.status_code == 404, response.text
