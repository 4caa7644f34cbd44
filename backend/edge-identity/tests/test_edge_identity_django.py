"""The Django middleware: ``request.edge_identity`` from ``settings.EDGE_IDENTITY``.

Django is configured here when nothing else did (``settings.configure``); in the
repository's whole test run the backend's settings are loaded already, and
``override_settings`` supplies what this test needs either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(ALLOWED_HOSTS=["testserver"], USE_TZ=True)
    django.setup()

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from edge_identity_support import AUDIENCE, FakeRedis, mint, write_jwks

from edge_identity import RedisAssertionStore, Rejection
from edge_identity.django import EdgeIdentityMiddleware, identity_for


@pytest.fixture
def edge_settings(tmp_path: Path) -> Iterator[FakeRedis]:
    redis = FakeRedis()
    store = RedisAssertionStore(
        lambda: redis, seen_key=lambda i: f"seen:{i}", revoked_key=lambda j: f"revoked:{j}"
    )
    config = {"jwks": str(write_jwks(tmp_path / "jwks.json")), "audience": AUDIENCE}
    with override_settings(EDGE_IDENTITY={**config, "store": store}):
        yield redis


def _view(seen: list[Any]) -> Any:
    def view(request: HttpRequest) -> HttpResponse:
        seen.append((request.edge_identity, request.edge_identity_rejection))  # type: ignore[attr-defined]
        return HttpResponse("ok")

    return view


def test_the_request_carries_the_verified_identity(edge_settings: FakeRedis) -> None:
    seen: list[Any] = []
    middleware = EdgeIdentityMiddleware(_view(seen))
    request = RequestFactory().get("/orders/1", HTTP_X_IDENTITY_ASSERTION=mint())
    assert middleware(request).status_code == 200
    ((identity, rejection),) = seen
    assert rejection is None and identity.subject == "6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33"


def test_the_script_prefix_is_part_of_the_bound_path(edge_settings: FakeRedis) -> None:
    """The gateway binds the whole path; Django splits SCRIPT_NAME off ``path_info``."""
    seen: list[Any] = []
    middleware = EdgeIdentityMiddleware(_view(seen))
    token = mint(path="/svc/orders/1")
    request = RequestFactory().get("/orders/1", SCRIPT_NAME="/svc", HTTP_X_IDENTITY_ASSERTION=token)
    middleware(request)
    other = RequestFactory().get("/orders/1", HTTP_X_IDENTITY_ASSERTION=mint(path="/svc/orders/1"))
    middleware(other)
    assert seen[0][1] is None
    assert seen[1] == (None, Rejection.MISMATCHED_REQUEST)


def test_anonymous_requests_go_on_to_the_view(edge_settings: FakeRedis) -> None:
    seen: list[Any] = []
    middleware = EdgeIdentityMiddleware(_view(seen))
    middleware(RequestFactory().get("/orders/1"))
    middleware(RequestFactory().get("/orders/1", HTTP_X_IDENTITY_ASSERTION=mint(aud="billing")))
    assert seen == [(None, Rejection.MISSING), (None, Rejection.WRONG_AUDIENCE)]


def test_a_request_is_verified_once(edge_settings: FakeRedis) -> None:
    middleware = EdgeIdentityMiddleware(_view([]))
    request = RequestFactory().get("/orders/1", HTTP_X_IDENTITY_ASSERTION=mint())
    middleware(request)
    again = identity_for(request, middleware.verifier)
    assert again.identity is not None, "a second look is not a replay"
    assert len(edge_settings.round_trips) == 1


def test_a_missing_or_incomplete_setting_is_a_configuration_error() -> None:
    with override_settings(EDGE_IDENTITY=None), pytest.raises(ImproperlyConfigured):
        EdgeIdentityMiddleware(_view([]))
    with (
        override_settings(EDGE_IDENTITY={"jwks": "/x.json", "audience": AUDIENCE}),
        pytest.raises(ImproperlyConfigured, match="redis_url"),
    ):
        EdgeIdentityMiddleware(_view([]))
