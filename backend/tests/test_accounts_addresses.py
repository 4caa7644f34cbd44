"""One account per mailbox: canonical addresses (accounts/addresses.py)."""

from __future__ import annotations

import pytest
from accounts_support import PASSWORD, field_errors, post

from auth_backend.accounts.addresses import InvalidAddress, canonical_email
from auth_backend.accounts.models import User
from auth_backend.accounts.selectors import user_by_email

FULLWIDTH = "x@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"  # x@example.com, fullwidth


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (FULLWIDTH, "x@example.com"),
        (" X@Example.COM ", "x@example.com"),
        ("a@b\u00fccher.de", "a@xn--bcher-kva.de"),
        ("a+tag@sub.example.org", "a+tag@sub.example.org"),
        ("1m@vcli1k8j.cqciy.test", "1m@vcli1k8j.cqciy.test"),  # RFC 6761, as before
    ],
)
def test_canonical_spellings(raw, canonical):
    assert canonical_email(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "\u017fam@example.com",
        "b\u0131ll@example.com",
        "a\u0301b@example.com",
        "\uff4a@x.io",
        "a@",
        "@x.io",
        "a@b.localhost",  # special-use (RFC 6761), no mailbox
    ],
)
def test_ambiguous_or_broken_addresses_are_refused(raw):
    with pytest.raises(InvalidAddress):
        canonical_email(raw)


@pytest.mark.django_db
def test_a_look_alike_registration_is_the_existing_account(client):
    assert (
        post(client, "register", {"email": "x@example.com", "password": PASSWORD}).status_code
        == 202
    )
    assert post(client, "register", {"email": FULLWIDTH, "password": PASSWORD}).status_code == 202
    assert list(User.objects.values_list("email", flat=True)) == ["x@example.com"]


@pytest.mark.django_db
def test_the_long_s_is_refused_with_a_message_of_ours(client):
    response = post(client, "register", {"email": "\u017fam@example.com", "password": PASSWORD})
    assert response.status_code == 400
    (message,) = field_errors(response)["email"]
    assert "ASCII" in message


@pytest.mark.django_db
def test_a_row_stored_before_canonical_addresses_is_still_found():
    legacy = User.objects.create(email="x@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com")
    assert user_by_email(FULLWIDTH) == legacy
    canonical = User.objects.create(email="x@example.com")
    assert user_by_email(FULLWIDTH) == canonical  # the canonical row first
