"""HTTP metrics of the backend, recorded by a middleware for every request on every listener.

``auth_http_requests_total{listener,route,method,status}`` and
``auth_http_request_duration_seconds{listener,route,method}`` (histogram). ``route`` is the
URL pattern that matched (Django's ``request.resolver_match.route``, written as
``/api/auth/profile`` or ``/internal/auth/users/<user_id>``), never the request's path: a path
holds ids and whatever a scanner sends, so its values would be unbounded. A request that
matched no route is ``route="unmatched"``; a method outside the standard ones is ``other``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

from auth_backend.core.listeners import listener_of

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "auth_http_requests_total",
    "HTTP requests answered by the backend, by listener (public, internal, metrics), route "
    "template, method and status.",
    ["listener", "route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "auth_http_request_duration_seconds",
    "Time from the request entering Django to its response leaving it, by listener, route "
    "template and method.",
    ["listener", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")


def route_label(route: str | None) -> str:
    """A route template as a label: ``internal/auth/users/(?P<user_id>[^/]+)/?$`` →
    ``/internal/auth/users/<user_id>``; ``None`` (nothing matched) → ``unmatched``."""
    if route is None:
        return UNMATCHED
    out, i = [], 0
    while i < len(route):
        group = _NAMED_GROUP.match(route, i)
        if group is None:
            out.append(route[i])
            i += 1
            continue
        depth, j = 1, group.end()
        while j < len(route) and depth:  # skip the group's own pattern, nested groups too
            if route[j] == "\\":
                j += 1
            elif route[j] == "(":
                depth += 1
            elif route[j] == ")":
                depth -= 1
            j += 1
        out.append(f"<{group.group(1)}>")
        i = j
    text = "".join(out).replace("^", "")
    for suffix in ("/?$", "$", "/?"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return "/" + text.replace("\\", "").lstrip("/")


class HttpMetricsMiddleware:
    """Counts and times each request; first in ``MIDDLEWARE`` so it sees the final status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - start
        match = getattr(request, "resolver_match", None)
        listener = getattr(request, "listener", None) or listener_of(request.META)
        route = route_label(match.route if match is not None else None)
        method = request.method if request.method in METHODS else "other"
        HTTP_REQUESTS.labels(listener, route, method, str(response.status_code)).inc()
        HTTP_REQUEST_DURATION.labels(listener, route, method).observe(elapsed)
        return response
