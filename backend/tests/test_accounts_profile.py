"""GET / PATCH profile: identity from the gateway, whitelisted writes only."""

from __future__ import annotations

import pytest
from accounts_support import API, error_code, field_errors, make_user
from identity_support import identity_headers

from auth_backend.accounts.models import User

pytestmark = pytest.mark.django_db

PROFILE_FIELDS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "bio",
    "avatar_url",
    "language",
    "email_verified",
    "roles",
    "is_seller",
    "two_factor_enabled",
    "date_joined",
}


def patch(client, user, body, slash=""):
    return client.patch(
        API + "profile" + slash, body, content_type="application/json", **identity_headers(user)
    )


@pytest.fixture
def user() -> User:
    return make_user(first_name="Alice", last_name="Liddell", is_seller=True)


@pytest.mark.parametrize("slash", ["", "/"])
def test_get_profile(client, user, slash):
    response = client.get(API + "profile" + slash, **identity_headers(user))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PROFILE_FIELDS
    assert body["id"] == str(user.pk)
    assert body["email"] == "alice@example.com"
    assert (body["first_name"], body["last_name"]) == ("Alice", "Liddell")
    assert body["email_verified"] is True
    assert body["roles"] == ["user", "seller"]
    assert body["is_seller"] is True
    assert body["two_factor_enabled"] is False
    assert body["language"] == "en"
    assert "password" not in body and "totp_secret" not in body


@pytest.mark.parametrize("method", ["get", "patch"])
def test_profile_without_identity_is_401(client, method):
    response = getattr(client, method)(API + "profile", {}, content_type="application/json")

    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_profile_of_a_deactivated_user_is_401(client, user):
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert client.get(API + "profile", **identity_headers(user)).status_code == 401


@pytest.mark.parametrize("slash", ["", "/"])
def test_patch_writes_the_whitelisted_fields(client, user, slash):
    changes = {
        "first_name": "Al",
        "last_name": "",
        "bio": "Curiouser and curiouser.",
        "avatar_url": "https://cdn.example.com/a.png",
        "language": "de",
    }

    response = patch(client, user, changes, slash)

    assert response.status_code == 200
    assert {key: response.json()[key] for key in changes} == changes
    user.refresh_from_db()
    assert {key: getattr(user, key) for key in changes} == changes


def test_patch_with_some_fields_leaves_the_others(client, user):
    response = patch(client, user, {"bio": "hi"})

    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.bio, user.first_name) == ("hi", "Alice")


@pytest.mark.parametrize(
    "field",
    [
        "email",
        "is_staff",
        "is_seller",
        "roles",
        "role",
        "email_verified",
        "email_verified_at",
        "id",
        "password",
        "two_factor_enabled",
        "totp_secret",
        "is_active",
        "is_superuser",
        "date_joined",
    ],
)
def test_read_only_fields_are_refused_not_ignored(client, user, field):
    before = User.objects.filter(pk=user.pk).values().get()

    response = patch(client, user, {"first_name": "Mallory", field: True})

    assert response.status_code == 400
    errors = field_errors(response)
    assert set(errors) == {field}
    assert "read-only" in errors[field][0]
    assert "first_name, last_name, bio, avatar_url, language" in errors[field][0]
    assert User.objects.filter(pk=user.pk).values().get() == before


def test_unknown_fields_are_refused_too(client, user):
    response = patch(client, user, {"nickname": "ally", "bio": "x"})

    assert response.status_code == 400
    assert "Unknown field" in field_errors(response)["nickname"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"avatar_url": "http://cdn.example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"avatar_url": "https://" + "a" * 500 + ".com"}, "avatar_url"),
        ({"language": "klingon"}, "language"),
        ({"language": ""}, "language"),
        ({"first_name": "x" * 151}, "first_name"),
        ({"bio": "x" * 1001}, "bio"),
    ],
)
def test_invalid_values_are_field_errors(client, user, body, field):
    response = patch(client, user, body)

    assert response.status_code == 400
    assert set(field_errors(response)) == {field}


def test_the_avatar_can_be_removed(client, user):
    User.objects.filter(pk=user.pk).update(avatar_url="https://cdn.example.com/a.png")

    response = patch(client, user, {"avatar_url": ""})

    assert response.status_code == 200
    assert response.json()["avatar_url"] == ""


def test_a_non_object_body_is_refused(client, user):
    response = patch(client, user, ["first_name"])

    assert response.status_code == 400
    assert error_code(response) == "invalid"


def test_put_is_not_allowed(client, user):
    response = client.put(
        API + "profile", {"bio": "x"}, content_type="application/json", **identity_headers(user)
    )

    assert response.status_code == 405
