"""Spoofed identity headers: every case and ``_`` variant is found
(docs/identity-assertion.md)."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from edge_plugins.jwt.identity import (
    IDENTITY_HEADERS,
    Identity,
    is_spoofable,
    spoofable_header_names,
)


def _variants(base: str) -> st.SearchStrategy[str]:
    """``base`` with every letter in random case and every ``-`` as ``-`` or ``_``."""

    def char(c: str) -> st.SearchStrategy[str]:
        if c == "-":
            return st.sampled_from("-_")
        if c.isalpha():
            return st.sampled_from([c.lower(), c.upper()])
        return st.just(c)

    return st.tuples(*(char(c) for c in base)).map("".join)


_suffix = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)


def test_identity_headers_are_the_contracts() -> None:
    assert IDENTITY_HEADERS == (
        "X-User-Id",
        "X-User-Email",
        "X-User-Roles",
        "X-User-Scopes",
        "X-Identity-Assertion",
    )
    assert all(is_spoofable(name) for name in IDENTITY_HEADERS)


def test_known_spellings() -> None:
    names = [
        "x-user-id",
        "x-user_id",
        "X-User_Id",
        "X_USER_EMAIL",
        "x-identity-assertion",
        "X_Identity_Assertion",
        "x-user-anything",
        "host",
        "x-userid",
        "x-users-id",
        "x-identity-assertions",
        "authorization",
    ]
    assert spoofable_header_names(names) == names[:7]


@given(
    st.one_of(
        _variants("x-user-id"),
        _variants("x-user-email"),
        _variants("x-user-roles"),
        _variants("x-user-scopes"),
        _variants("x-identity-assertion"),
        st.tuples(_variants("x-user-"), _suffix).map("".join),
    )
)
def test_every_case_and_underscore_variant_is_spoofable(name: str) -> None:
    assert spoofable_header_names(["accept", name, "host"]) == [name]


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=30))
def test_only_identity_names_match(name: str) -> None:
    folded = name.lower().replace("_", "-")
    expected = folded.startswith("x-user-") or folded == "x-identity-assertion"
    assert is_spoofable(name) is expected


def test_names_are_returned_as_sent_without_duplicates() -> None:
    assert spoofable_header_names(["X-User_Id", "X-User_Id", "x-user-id"]) == [
        "X-User_Id",
        "x-user-id",
    ]


def test_upstream_headers_equal_what_the_backend_recomputes() -> None:
    identity = Identity.from_claims(
        {
            "sub": "u1",
            "email": "a@b.test",
            "roles": ["user", "staff"],
            "scope": " profile  seller ",
            "jti": "j1",
        }
    )
    headers = identity.upstream_headers("jws")
    assert headers == {
        "X-User-Id": "u1",
        "X-User-Email": "a@b.test",
        "X-User-Roles": "user,staff",
        "X-User-Scopes": "profile seller",
        "X-Identity-Assertion": "jws",
    }


def test_empty_identity_values_are_not_sent() -> None:
    identity = Identity.from_claims({"sub": "u1", "jti": "j1"})
    assert identity.upstream_headers("jws") == {"X-User-Id": "u1", "X-Identity-Assertion": "jws"}
