"""The Django admin for users: list, search, add with a hashed password, deactivate."""

from __future__ import annotations

import pytest
from accounts_support import PASSWORD, make_user

from auth_backend.accounts.models import User
from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/user/"


@pytest.fixture
def client(internal_client):
    """Requests on the internal listener, where /internal/ and /admin/ are served."""
    return internal_client


@pytest.fixture
def admin_client(client):
    admin = User.objects.create_superuser("root@example.com", "a-long-admin-password")
    client.force_login(admin)
    return client


def test_changelist_lists_and_searches_users(admin_client):
    make_user("alice@example.com", first_name="Alice")
    make_user("bob@example.com", first_name="Bob")

    listing = admin_client.get(CHANGELIST)
    assert listing.status_code == 200
    assert b"alice@example.com" in listing.content and b"bob@example.com" in listing.content

    found = admin_client.get(CHANGELIST, {"q": "Bob"})
    assert found.status_code == 200
    assert b"bob@example.com" in found.content
    assert b"alice@example.com" not in found.content


def test_change_page_never_shows_secrets_or_an_editable_password(admin_client):
    user = make_user(totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", totp_enabled=True)

    page = admin_client.get(f"{CHANGELIST}{user.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "JBSWY3DPEHPK3PXP" not in html
    assert 'name="password"' not in html  # the hash is shown read-only, never as an input
    assert 'name="totp_secret"' not in html
    assert 'name="is_seller"' not in html  # seller status comes from applications only
    assert 'name="email_verified_at"' not in html
    assert "../password/" in html  # Django's change-password form (validated, hashed)


@pytest.mark.argon2
def test_add_form_hashes_the_password_and_normalises_the_email(admin_client):
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "email": "Carol@Example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(email="carol@example.com")
    assert user.password.startswith("argon2$")
    assert user.check_password(PASSWORD)


def test_add_form_refuses_a_case_variant_of_an_existing_email(admin_client):
    make_user("dave@example.com")

    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"email": "DAVE@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 200  # the form again, with an error
    assert User.objects.filter(email__iexact="dave@example.com").count() == 1


def test_deactivating_a_user_ends_their_sessions(admin_client):
    user = make_user()
    pair = issue_token_pair(user)
    page = admin_client.get(f"{CHANGELIST}{user.pk}/change/")
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if name in form.fields and value is not None
    }
    data.update(is_active="", groups=[], user_permissions=[], is_staff="", is_superuser="")
    data.pop("password", None)

    response = admin_client.post(f"{CHANGELIST}{user.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.is_active is False
    with pytest.raises(InvalidAccessToken) as excinfo:
        validate_access_token(pair.access_token)
    assert excinfo.value.reason in {"revoked", "inactive_user"}
    assert user.refresh_families.get().revoke_reason == "deactivation"
