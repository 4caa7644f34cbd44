"""Internal API endpoints under /internal/auth/: users, batch, validate-token, check-email."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from auth_backend.accounts.models import User
from auth_backend.internal.keys import generate_api_key, hash_api_key, parse_api_keys
from auth_backend.internal.serializers import MAX_BATCH_IDS
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.revoking import RevokeReason, logout, revoke_all_for_user

pytestmark = pytest.mark.django_db

KEY = generate_api_key()
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {KEY}"}
BATCH = "/internal/auth/users/batch"
VALIDATE = "/internal/auth/validate-token"
VERIFIED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def internal_key(settings):
    settings.INTERNAL_API_KEYS = parse_api_keys(f"orders:{hash_api_key(KEY)}")


@pytest.fixture
def client(internal_client):
    """Requests on the internal listener, where /internal/ and /admin/ are served."""
    return internal_client


def make_user(email: str, **fields: object) -> User:
    fields.setdefault("email_verified_at", VERIFIED_AT)
    return User.objects.create_user(email, password=None, **fields)


@pytest.fixture
def ada() -> User:
    return make_user("ada@example.com", first_name="Ada", last_name="Lovelace")


def get(client, url: str):
    return client.get(url, **AUTH)


def post(client, url: str, body: object):
    return client.post(url, body, content_type="application/json", **AUTH)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    return body["error"]


def expected_user(user: User) -> dict:
    return {
        "id": str(user.pk),
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "roles": user.roles,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
        "is_seller": user.is_seller,
        "date_joined": user.date_joined.isoformat().replace("+00:00", "Z"),
    }


# --- GET users/{id} ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_user_by_id(client, ada, suffix):
    response = get(client, f"/internal/auth/users/{ada.pk}{suffix}")
    assert response.status_code == 200, response.content
    assert response.json() == expected_user(ada)
    assert response.json()["roles"] == ["user"]


def test_user_by_id_reports_roles_and_flags(client):
    seller = make_user("shop@example.com", is_seller=True, is_staff=True, email_verified_at=None)
    body = get(client, f"/internal/auth/users/{seller.pk}").json()
    assert body["roles"] == ["user", "seller", "staff"]
    assert body["is_seller"] is True
    assert body["email_verified"] is False


def test_user_by_id_includes_deactivated_users(client, ada):
    ada.is_active = False
    ada.save()
    response = get(client, f"/internal/auth/users/{ada.pk}")
    assert response.status_code == 200
    assert response.json()["is_active"] is False


def test_user_by_id_accepts_other_uuid_spellings(client, ada):
    response = get(client, f"/internal/auth/users/{str(ada.pk).upper()}")
    assert response.status_code == 200
    assert response.json()["id"] == str(ada.pk)
    response = get(client, f"/internal/auth/users/{ada.pk.hex}")
    assert response.json()["id"] == str(ada.pk)


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "123",
        "0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5",
        "' OR 1=1 --",
        "x" * 300,
        "%00",
    ],
)
def test_user_by_id_with_a_malformed_id_is_400(client, bad_id):
    response = get(client, f"/internal/auth/users/{bad_id}")
    error = assert_error(response, 400, "invalid_id")
    assert error["details"] == {
        "invalid_ids": [response.wsgi_request.resolver_match.kwargs["user_id"]]
    }


def test_user_by_id_unknown_is_404(client, ada):
    error = assert_error(get(client, f"/internal/auth/users/{uuid.uuid4()}"), 404, "not_found")
    assert error["details"] == {}


def test_user_by_id_is_read_only(client, ada):
    response = client.delete(f"/internal/auth/users/{ada.pk}", **AUTH)
    assert_error(response, 405, "method_not_allowed")
    assert User.objects.filter(pk=ada.pk).exists()


# --- POST users/batch --------------------------------------------------------------------------


def test_batch_returns_users_in_request_order_and_lists_missing(client, ada):
    grace = make_user("grace@example.com")
    unknown = uuid.uuid4()
    response = post(client, BATCH, {"ids": [str(grace.pk), str(unknown), str(ada.pk)]})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "users": [expected_user(grace), expected_user(ada)],
        "missing": [str(unknown)],
    }


def test_batch_deduplicates_ids_in_any_spelling(client, ada):
    unknown = uuid.uuid4()
    ids = [str(ada.pk), str(ada.pk).upper(), ada.pk.hex, str(unknown), str(unknown).upper()]
    body = post(client, f"{BATCH}/", {"ids": ids}).json()
    assert [user["id"] for user in body["users"]] == [str(ada.pk)]
    assert body["missing"] == [str(unknown)]


def test_batch_accepts_an_empty_list(client):
    assert post(client, BATCH, {"ids": []}).json() == {"users": [], "missing": []}


def test_batch_of_the_maximum_size_uses_one_query(client, django_assert_num_queries):
    users = [make_user(f"user{i}@example.com") for i in range(10)]
    ids = [str(u.pk) for u in users] + [str(uuid.uuid4()) for _ in range(MAX_BATCH_IDS - 10)]
    with django_assert_num_queries(1):
        response = post(client, BATCH, {"ids": ids})
    assert response.status_code == 200
    assert len(response.json()["users"]) == 10
    assert len(response.json()["missing"]) == MAX_BATCH_IDS - 10


def test_batch_of_more_than_100_ids_is_400(client):
    ids = [str(uuid.uuid4()) for _ in range(MAX_BATCH_IDS + 1)]
    error = assert_error(post(client, BATCH, {"ids": ids}), 400, "too_many_ids")
    assert error["details"] == {"max_ids": 100, "received": 101}


def test_batch_counts_duplicates_towards_the_limit(client):
    ids = [str(uuid.uuid4())] * (MAX_BATCH_IDS + 1)
    assert_error(post(client, BATCH, {"ids": ids}), 400, "too_many_ids")


def test_batch_with_malformed_ids_is_400_listing_them(client, ada):
    ids = [str(ada.pk), "nope", 42, None, {"id": "x"}, ["y"], "", str(ada.pk)[:-1], True]
    error = assert_error(post(client, BATCH, {"ids": ids}), 400, "invalid_id")
    assert error["details"] == {"invalid_ids": ids[1:]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": None},
        {"ids": "0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"},
        {"ids": {"0": "0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"}},
        ["0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"],
    ],
)
def test_batch_without_an_ids_list_is_400(client, body):
    error = assert_error(post(client, BATCH, body), 400, "invalid")
    assert "fields" in error["details"]


def test_batch_with_a_body_that_is_not_json_is_400(client):
    response = client.post(BATCH, "{ids: [", content_type="application/json", **AUTH)
    assert_error(response, 400, "parse_error")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.uuids().map(str)
    | st.uuids().map(lambda u: u.hex.upper()),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return False
    return isinstance(value, str)


@hypothesis_settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=st.lists(JSON_VALUES, max_size=MAX_BATCH_IDS + 5))
def test_batch_answers_any_json_list_without_a_server_error(client, ids):
    response = post(client, BATCH, {"ids": ids})
    invalid = [value for value in ids if not _is_uuid(value)]
    if len(ids) > MAX_BATCH_IDS:
        assert_error(response, 400, "too_many_ids")
    elif invalid:
        assert assert_error(response, 400, "invalid_id")["details"] == {"invalid_ids": invalid}
    else:
        assert response.status_code == 200
        assert len(response.json()["missing"]) == len({uuid.UUID(v) for v in ids})


def test_batch_only_answers_post(client):
    assert_error(client.get(BATCH, **AUTH), 405, "method_not_allowed")


# --- POST validate-token -----------------------------------------------------------------------


def validate(client, token: object):
    response = post(client, VALIDATE, {"token": token})
    assert response.status_code == 200, response.content
    return response.json()


def test_validate_token_active(client, ada):
    pair = issue_token_pair(ada)
    claims = jwt.decode(pair.access_token, options={"verify_signature": False})
    body = validate(client, pair.access_token)
    assert body == {
        "active": True,
        "sub": str(ada.pk),
        "email": "ada@example.com",
        "roles": ["user"],
        "scope": claims["scope"],
        "exp": claims["exp"],
        "jti": claims["jti"],
    }


def test_validate_token_reports_the_roles_of_the_token(client):
    seller = make_user("shop@example.com", is_seller=True)
    body = validate(client, issue_token_pair(seller).access_token)
    assert body["roles"] == ["user", "seller"]
    assert "seller" in body["scope"].split()


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 10_000])
def test_validate_token_garbage_is_inactive(client, token):
    assert validate(client, token) == {"active": False}


def test_validate_token_expired_is_inactive(client, ada, settings):
    settings.ACCESS_TOKEN_TTL_SECONDS = -60
    token = issue_token_pair(ada).access_token
    assert validate(client, token) == {"active": False}


def test_validate_token_with_a_wrong_signature_is_inactive(client, ada):
    token = issue_token_pair(ada).access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]})
    assert validate(client, forged) == {"active": False}


def test_validate_token_with_a_tampered_payload_is_inactive(client, ada):
    staff_claims_token = issue_token_pair(ada).access_token
    head, _, signature = staff_claims_token.split(".")
    claims = jwt.decode(staff_claims_token, options={"verify_signature": False})
    claims["roles"] = ["user", "staff"]
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    assert validate(client, f"{head}.{payload}.{signature}") == {"active": False}


def test_validate_token_revoked_by_logout_is_inactive(client, ada):
    pair = issue_token_pair(ada)
    assert validate(client, pair.access_token)["active"] is True
    assert logout(ada, refresh_token=pair.refresh_token) is True
    assert validate(client, pair.access_token) == {"active": False}


def test_validate_token_revoked_for_all_sessions_is_inactive(client, ada):
    pair = issue_token_pair(ada)
    revoke_all_for_user(ada, reason=RevokeReason.PASSWORD_RESET)
    assert validate(client, pair.access_token) == {"active": False}


def test_validate_token_of_a_deactivated_user_is_inactive(client, ada):
    pair = issue_token_pair(ada)
    ada.is_active = False
    ada.save()
    assert validate(client, pair.access_token) == {"active": False}


def test_validate_token_logs_why_a_token_is_inactive_but_not_the_token(
    client, ada, caplog, settings
):
    caplog.set_level(logging.INFO, logger="auth_backend.internal")
    settings.ACCESS_TOKEN_TTL_SECONDS = -60
    token = issue_token_pair(ada).access_token
    validate(client, token)
    [record] = [r for r in caplog.records if r.name == "auth_backend.internal.services"]
    assert record.reason == "expired"
    assert token not in caplog.text


@pytest.mark.parametrize(
    "body", [{}, {"token": None}, {"token": 123}, {"token": ["t"]}, {"access_token": "t"}]
)
def test_validate_token_without_a_token_string_is_400(client, body):
    error = assert_error(post(client, VALIDATE, body), 400, "invalid")
    assert "token" in error["details"]["fields"]


# --- GET check-email/{email} -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "ada@example.com",
        "ada%40example.com",
        "ADA@Example.COM",
        "Ada%40EXAMPLE.com/",
    ],
)
def test_check_email_exists_case_insensitive_and_url_decoded(client, ada, path):
    response = get(client, f"/internal/auth/check-email/{path}")
    assert response.status_code == 200, response.content
    assert response.json() == {"exists": True}


def test_check_email_unknown_address(client, ada):
    response = get(client, "/internal/auth/check-email/grace%40example.com")
    assert response.json() == {"exists": False}


def test_check_email_keeps_plus_and_slash_and_decodes_once(client):
    make_user("ada+shop@example.com")
    make_user("a/b@example.com")
    make_user("a%b@example.com")
    for path in [
        "ada%2Bshop%40example.com",
        "ada+shop@example.com",
        "a%2Fb%40example.com",
        "a%25b%40example.com",
    ]:
        assert get(client, f"/internal/auth/check-email/{path}").json() == {"exists": True}
    # "+" in a path is a plus, not a space; "%2540" is a literal "%40", not "@".
    assert get(client, "/internal/auth/check-email/ada%20shop%40example.com").status_code == 400
    assert get(client, "/internal/auth/check-email/ada%2540example.com").status_code == 400


def test_check_email_counts_deactivated_accounts(client, ada):
    ada.is_active = False
    ada.save()
    assert get(client, "/internal/auth/check-email/ada@example.com").json() == {"exists": True}


@pytest.mark.parametrize(
    "path", ["not-an-email", "ada%40", "%40example.com", f"{'a' * 250}%40example.com"]
)
def test_check_email_with_an_invalid_address_is_400(client, path):
    error = assert_error(get(client, f"/internal/auth/check-email/{path}"), 400, "invalid")
    assert "email" in error["details"]["fields"]
