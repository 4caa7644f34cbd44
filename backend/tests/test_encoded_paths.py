"""The backend refuses a raw path with an encoded ``/`` or ``\\`` (auth_backend/core/paths.py).

Django resolves the decoded path, Kong routes the encoded one: without this check a request
that reached the backend without edge-jwt could run ``login/2fa`` as ``login%2F2fa``.
"""

from __future__ import annotations

import pytest

from auth_backend.core.paths import has_encoded_separator, raw_path

LOGIN_2FA = "/api/auth/login/2fa"


@pytest.mark.django_db
@pytest.mark.parametrize("encoded", ["%2F", "%2f", "%5C", "%5c"])
def test_a_raw_path_with_an_encoded_separator_is_a_400_before_any_view(client, encoded):
    response = client.post(
        LOGIN_2FA,
        {"challenge": "x", "code": "000000"},
        content_type="application/json",
        RAW_URI=f"/api/auth/login{encoded}2fa?next=1",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == "encoded_path_separator"
    assert body["request_id"]
    assert response.wsgi_request.resolver_match is None  # no view ran


@pytest.mark.django_db
def test_the_same_view_with_a_plain_raw_path_runs(client):
    response = client.post(
        LOGIN_2FA,
        {"challenge": "x", "code": "000000"},
        content_type="application/json",
        RAW_URI=LOGIN_2FA,
    )
    assert response.wsgi_request.resolver_match is not None
    assert response.json()["error"]["code"] != "encoded_path_separator"


@pytest.mark.django_db
def test_the_internal_listener_keeps_encoded_slashes_in_its_parameters():
    """``check-email/<email>``: an address may hold a ``/``, which a caller encodes."""
    from django.test import Client

    from auth_backend.core.listeners import ENVIRON_KEY

    internal = Client(**{ENVIRON_KEY: "internal"})
    response = internal.get(
        "/internal/auth/check-email/a/b@example.com",
        RAW_URI="/internal/auth/check-email/a%2Fb@example.com",
    )
    assert response.status_code != 400 or response.json()["error"]["code"] != (
        "encoded_path_separator"
    )
    assert response.wsgi_request.resolver_match is not None


def test_raw_path_reads_the_servers_target_without_its_query():
    assert raw_path({"RAW_URI": "/a%2Fb?c=%2F"}) == "/a%2Fb"
    assert raw_path({"REQUEST_URI": "/x"}) == "/x"
    assert raw_path({"PATH_INFO": "/x"}) is None


@pytest.mark.parametrize(
    ("path", "refused"),
    [("/a%2Fb", True), ("/a%5cb", True), ("/a%252Fb", False), ("/a/b", False), ("/a%2", False)],
)
def test_only_an_encoded_slash_or_backslash_counts(path, refused):
    assert has_encoded_separator(path) is refused
