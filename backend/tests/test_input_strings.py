"""Request fields the schema types as strings take JSON strings only (found by the fuzzer).

DRF's CharField would read ``5`` as ``"5"``: ``POST logout`` answered 204 to
``{"refresh_token": 5}``. Now every input serializer answers 400 ``invalid`` naming the field.
"""

from __future__ import annotations

import pytest
from accounts_support import make_user
from identity_support import identity_headers

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", [5, 1.5, True, ["token"], {"a": "b"}])
def test_logout_refuses_a_refresh_token_that_is_no_string(client, value):
    response = client.post(
        "/api/auth/logout",
        {"refresh_token": value},
        content_type="application/json",
        **identity_headers(make_user()),
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["details"]["fields"] == {"refresh_token": ["Not a valid string."]}


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/auth/token/refresh", {"refresh_token": 12345}, "refresh_token"),
        ("/api/auth/verify-email", {"token": 123456}, "token"),
        (
            "/api/auth/register",
            {"email": "a@example.com", "password": "correct-horse-9", "first_name": 7},
            "first_name",
        ),
        ("/api/auth/login/2fa", {"challenge_token": "x", "code": 123456}, "code"),
    ],
)
def test_string_fields_refuse_numbers(client, url, body, field):
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["fields"][field] == ["Not a valid string."]


def test_strings_are_still_accepted(client):
    response = client.post(
        "/api/auth/logout",
        {"refresh_token": "not-a-known-token"},
        content_type="application/json",
        **identity_headers(make_user()),
    )
    assert response.status_code == 204
