"""For every route of kong/kong.yml, the view the backend runs is one that route is for,
whatever headers, encodings and dot segments a client adds (docs/architecture.md).

The cases are generated, exhaustively over a fixed set, from the backend's views
(``views.ROUTE_VIEWS``): from each view's path, headers that set a script name or a path
(``SCRIPT_NAME``, ``PATH_INFO``, ``X-Script-Name``, ``X-Forwarded-Prefix``, ``X-Original-URL``,
``X-Rewrite-URL``, … in case and ``_``/``-`` variants) pointing at another view; each ``/``
of another view's path encoded (``%2F``, ``%5C``, any case, double-encoded, overlong
UTF-8); and dot segments, plain and encoded, climbing out of one route into another.

Each case is sent through the gateway as ``OPTIONS`` (no view changes anything on it; the
JWKS fetches edge-jwt makes are GETs, so they never count) with an access token the issuer
signed for a fresh subject with the staff role, so every route lets it through and no
per-user limit is spent. Which route the edge matched and which view the backend ran are
read from their metrics (views.py). To keep to a couple of minutes, the cases are sent in
batches that the repository's router (kong_harness.router, Kong's ``traditional_compatible``
router, pinned to Kong by kong/harness/tests/test_router.py) puts on one route; the gateway's
own count per route must then confirm that every case of the batch matched that route, and
every view the backend ran must be one of that route's. A batch that fails is replayed one
case at a time, so the failure names the case.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pytest

from kong_harness.declarative import load_declarative
from kong_harness.router import Router
from tests.security.probes import auth
from tests.security.stack import Stack
from tests.security.test_tokens import claims_for
from tests.security.views import (
    KONG_YML,
    ROUTE_VIEWS,
    UNMATCHED,
    Seen,
    _backend_views,
    _kong_routes,
    kong_routes,
    request_path,
)
from tests.support.backend import User

AUTH = "/api/auth"
STATIC = "/api/auth/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"
VIEWS = sorted(view for views in ROUTE_VIEWS.values() for view in views)
#: Views an attacker would most like to reach under a cheaper route's limits and checks.
TARGETS = [
    "/api/auth/login",
    "/api/auth/login/2fa",
    "/api/auth/2fa/disable",
    "/api/auth/seller/applications/<application_id>/decision",
    "/api/auth/profile",
    "/api/auth/logout",
    "/api/auth/password/reset/confirm",
]
#: Headers a server or framework may read as the script name (the path is base + target).
SCRIPT_HEADERS = [
    "SCRIPT_NAME",
    "script_name",
    "Script-Name",
    "X_Script_Name",
    "X-Forwarded-Prefix",
]
#: Headers a server or framework may read as the path (sent all at once, naming the target).
PATH_HEADERS = [
    "PATH_INFO",
    "Path-Info",
    "REQUEST_URI",
    "RAW_URI",
    "SCRIPT_URL",
    "REDIRECT_URL",
    "X-Original-URL",
    "x_original_url",
    "X-Rewrite-URL",
    "X-Forwarded-Path",
]
#: An encoded "/" (or what some server may read as one).
SLASHES = ["%2F", "%2f", "%5C", "%5c", "%252F", "%C0%AF", "%u2215"]
#: A ".." segment, plain and encoded.
DOTDOTS = ["..", "%2e%2e", ".%2E", "%252e%252e", "%C0%AE%C0%AE"]


@dataclass(frozen=True)
class Case:
    family: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()


def _rel(view_path: str) -> str:
    return view_path[len(AUTH) + 1 :]


def _cases() -> Iterator[Case]:
    paths = [request_path(view) for view in VIEWS]
    targets = [request_path(view) for view in TARGETS]
    for path in [*paths, STATIC]:
        yield Case("plain", path)
        yield Case("plain", path + "/")
        yield Case("case", path.upper())
    for i, base in enumerate(paths):
        others = [t for t in targets if t != base]
        for j, name in enumerate(SCRIPT_HEADERS):
            target = others[(i + j) % len(others)]
            yield Case("script-header", base + target, ((name, base),))
        target = others[i % len(others)]
        yield Case("path-header", base, tuple((name, target) for name in PATH_HEADERS))
        yield Case("path-header", base, tuple((name, "http://x" + target) for name in PATH_HEADERS))
    for path in paths:
        slashes = [k for k, c in enumerate(path) if c == "/" and k > len(AUTH)]
        for k, slash in itertools.product(slashes, SLASHES):
            yield Case("encoded-slash", path[:k] + slash + path[k + 1 :])
        if slashes:
            yield Case("encoded-slash", path[: slashes[0]] + path[slashes[0] :].replace("/", "%2F"))
    for i, target in enumerate(paths):
        base = paths[(i * 7 + 3) % len(paths)]
        depth = base.count("/") - 2  # up to /api/auth
        for n, dots in enumerate(DOTDOTS):
            slash = "/" if (i + n) % 2 else "%2F"
            yield Case("dot-segments", base + (slash + dots) * depth + slash + _rel(target))
        yield Case("dot-segments", target.replace("/auth/", "/auth/./", 1))
        yield Case("dot-segments", target.replace("/auth/", "/auth/%2e/", 1))
        yield Case("dot-segments", target.replace("/auth/", "/auth//", 1))


@cache
def _router() -> Router:
    return Router(list(load_declarative(KONG_YML).routes))


def _predicted_route(case: Case) -> str | None:
    match = _router().match("OPTIONS", "127.0.0.1", case.path, dict(case.headers))
    return match.route.name if match is not None else None


@cache
def _cases_by_route() -> dict[str | None, list[Case]]:
    out: dict[str | None, list[Case]] = {}
    for case in dict.fromkeys(_cases()):
        out.setdefault(_predicted_route(case), []).append(case)
    return out


def _token(stack: Stack, user: User) -> list[tuple[str, str]]:
    """A fresh subject each time: no per-user limit is spent, and the edge accepts it."""
    claims = claims_for(user, sub=str(uuid.uuid4()), roles=["user", "staff"])
    return auth(stack.issuer.mint(claims))


def _send(stack: Stack, user: User, cases: list[Case]) -> tuple[list[int], Seen]:
    routes, views = _kong_routes(stack), _backend_views(stack, "OPTIONS")
    statuses = [
        stack.client.request(
            "OPTIONS", case.path, headers=[*case.headers, *_token(stack, user)]
        ).status_code
        for case in cases
    ]
    after_views = _backend_views(stack, "OPTIONS") - views
    after_routes = _kong_routes(stack) - routes
    return statuses, Seen(Counter(after_routes), Counter(after_views))


def test_every_kong_route_is_mapped() -> None:
    """A route added to kong/kong.yml must say which views it is for (views.ROUTE_VIEWS)."""
    assert set(kong_routes()) == set(ROUTE_VIEWS)


def test_every_view_is_routed_by_the_route_it_is_mapped_to() -> None:
    """The mapping agrees with the router: each view's own path matches its route."""
    for route, views in ROUTE_VIEWS.items():
        for view in views:
            assert _predicted_route(Case("plain", request_path(view))) == route, view


@pytest.mark.parametrize("route", [*sorted(ROUTE_VIEWS), None], ids=lambda r: r or "no-route")
def test_the_backend_runs_a_view_of_the_route_the_edge_matched(
    stack: Stack, user: User, route: str | None
) -> None:
    cases = _cases_by_route().get(route, [])
    assert len(cases) >= 5, f"too few cases reach {route}: the generator misses it"
    allowed = ROUTE_VIEWS.get(route, frozenset()) if route else frozenset()
    for start in range(0, len(cases), 40):
        batch = cases[start : start + 40]
        statuses, seen = _send(stack, user, batch)
        expected_routes = Counter({route: len(batch)}) if route else Counter()
        if seen.routes == expected_routes and seen.ran <= allowed:
            continue
        for case in batch:  # name the case
            (status,), one = _send(stack, user, [case])
            assert one.routes == (Counter({route: 1}) if route else Counter()), (case, one)
            assert one.ran <= allowed, (case, status, one)
        pytest.fail(f"a batch to {route} did not add up: {seen}, statuses {Counter(statuses)}")
    if route is not None:
        # The controls: each view of the route, asked plainly, ran (the metric sees it).
        views = [v for v in allowed if "static" not in v]
        _, seen = _send(stack, user, [Case("plain", request_path(v)) for v in views])
        assert set(seen.views) == set(views), seen
    assert UNMATCHED not in allowed
