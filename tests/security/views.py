"""Which route the edge matched and which view the backend ran, for one request.

Observed from the outside, with no hook in either product: the gateway's bundled
prometheus plugin counts each proxied request by route (``kong_http_requests_total{route}``
on the Status API, kong/plugins/prometheus/exporter.lua), and the backend counts each
request by the URL pattern Django resolved (``auth_http_requests_total{listener,route,
method}`` on its metrics listener, backend/src/auth_backend/core/http_metrics.py;
``route="unmatched"`` when no pattern matched, i.e. no view ran). A request's view is the
difference of the backend counter around it, restricted to the request's method (edge-jwt's
own JWKS fetches are GETs to the backend too, so the probes use other methods).

The security suite runs its tests one after the other (no xdist), so a delta belongs to the
request made between the two scrapes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.security.stack import Stack
from tests.support.harness import REPO

T = TypeVar("T")
UNMATCHED = "unmatched"  # the backend's label when no URL pattern matched (no view ran)
KONG_YML = REPO / "kong" / "kong.yml"


@dataclass(frozen=True)
class Seen:
    """What one request did: the edge's routes and the backend's views (labels, counts)."""

    routes: Counter[str]
    views: Counter[str]

    @property
    def ran(self) -> set[str]:
        """The views that ran (``unmatched`` is the backend's 404: none did)."""
        return {view for view in self.views if view != UNMATCHED}


def _kong_routes(stack: Stack) -> Counter[str]:
    text = httpx.get(f"{stack.runner.status_url}/metrics", timeout=10).text
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "kong_http_requests":
            continue
        for sample in family.samples:
            if sample.name == "kong_http_requests_total":
                out[sample.labels.get("route", "")] += int(sample.value)
    return out


def _backend_views(stack: Stack, method: str) -> Counter[str]:
    text = httpx.get(f"{stack.backend.metrics_url}/metrics", timeout=10).text
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "auth_http_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "auth_http_requests_total"
                and labels.get("listener") == "public"
                and labels.get("method") == method
            ):
                out[labels["route"]] += int(sample.value)
    return out


def observe(
    stack: Stack, method: str, send: Callable[[], T], routed: Callable[[T], bool]
) -> tuple[T, Seen]:
    """Send one request (``send``) and say what the edge and the backend did with it.

    ``routed(result)`` tells whether the gateway matched a route: the prometheus plugin
    counts in the log phase, after the response went out, so the route count is waited for
    (a few seconds at most) only then."""
    routes_before, views_before = _kong_routes(stack), _backend_views(stack, method)
    result = send()
    views = _backend_views(stack, method) - views_before
    routes = _kong_routes(stack) - routes_before
    deadline = time.monotonic() + 5
    while routed(result) and not routes and time.monotonic() < deadline:
        time.sleep(0.02)
        routes = _kong_routes(stack) - routes_before
    return result, Seen(routes, views)


# --- what each route of kong/kong.yml is for --------------------------------------------

#: The backend's URL patterns (``auth_http_requests_total`` route labels) each route of
#: kong/kong.yml exists for. A route added to kong.yml without an entry here fails
#: ``test_every_kong_route_is_mapped``; ``/api/auth/static`` is served by WhiteNoise before
#: URL resolution, so its requests resolve no pattern (``unmatched``).
ROUTE_VIEWS: dict[str, frozenset[str]] = {
    "auth-register": frozenset({"/api/auth/register"}),
    "auth-login": frozenset({"/api/auth/login"}),
    "auth-login-2fa": frozenset({"/api/auth/login/2fa"}),
    "auth-token-refresh": frozenset({"/api/auth/token/refresh"}),
    "auth-public": frozenset(
        {
            "/api/auth/verify-email",
            "/api/auth/resend-verification",
            "/api/auth/google/login",
            "/api/auth/password/reset",
            "/api/auth/password/reset/confirm",
            "/api/auth/.well-known/jwks.json",
            "/api/auth/health/live",
            "/api/auth/health/ready",
            "/api/auth/schema",
            "/api/auth/schema/swagger",
        }
    ),
    "auth-profile": frozenset({"/api/auth/profile"}),
    "auth-2fa": frozenset({"/api/auth/2fa/setup", "/api/auth/2fa/enable", "/api/auth/2fa/disable"}),
    "auth-seller-apply": frozenset({"/api/auth/seller/apply"}),
    "auth-seller-status": frozenset({"/api/auth/seller/status"}),
    "auth-protected": frozenset({"/api/auth/logout"}),
    "auth-seller-decision": frozenset({"/api/auth/seller/applications/<application_id>/decision"}),
}


def kong_routes(path: Path = KONG_YML) -> dict[str, list[str]]:
    """``{route name: paths}`` of every route in kong.yml."""
    doc = yaml.safe_load(path.read_text())
    return {
        route["name"]: list(route.get("paths") or [])
        for service in doc.get("services") or []
        for route in service.get("routes") or []
    }


def request_path(view: str) -> str:
    """A path the backend resolves to ``view`` (its parameters filled in)."""
    return view.replace("<application_id>", "00000000-0000-4000-8000-000000000000")
