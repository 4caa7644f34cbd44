"""Service API keys of the internal API: configuration, authentication, logging, tooling."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import runpy

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from identity_support import identity_headers

import auth_backend.settings
from auth_backend.accounts.models import User
from auth_backend.internal import keys as keys_module
from auth_backend.internal.checks import internal_api_keys_configured
from auth_backend.internal.keys import (
    ConfiguredKey,
    caller_for_key,
    generate_api_key,
    hash_api_key,
    parse_api_keys,
)

pytestmark = pytest.mark.django_db

ORDERS_KEY = generate_api_key()
CATALOG_KEY = generate_api_key()
USER_ID = "0b6f1c1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"

# Every internal endpoint, with a request that is valid apart from its credentials.
ENDPOINTS = [
    ("get", f"/internal/auth/users/{USER_ID}", None),
    ("post", "/internal/auth/users/batch", {"ids": [USER_ID]}),
    ("post", "/internal/auth/validate-token", {"token": "x"}),
    ("get", "/internal/auth/check-email/ada%40example.com", None),
    ("get", "/internal/auth/schema?format=json", None),
]


@pytest.fixture(autouse=True)
def internal_keys(settings):
    settings.INTERNAL_API_KEYS = parse_api_keys(
        f"orders:{hash_api_key(ORDERS_KEY)},catalog:{hash_api_key(CATALOG_KEY)}"
    )
    return settings.INTERNAL_API_KEYS


@pytest.fixture
def client(internal_client):
    """Requests on the internal listener, where /internal/ and /admin/ are served."""
    return internal_client


def call(client, method: str, url: str, body: dict | None, **headers: str):
    if method == "get":
        return client.get(url, **headers)
    return client.post(url, body, content_type="application/json", **headers)


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert body["request_id"] == response["X-Request-ID"]
    return body["error"]


# --- who gets in -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS)
def test_no_key_is_401_with_a_bearer_challenge(client, method, url, body):
    response = call(client, method, url, body)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="internal"'


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS)
def test_wrong_key_is_401(client, method, url, body):
    response = call(client, method, url, body, **bearer(generate_api_key()))
    assert_error(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"] == 'Bearer realm="internal", error="invalid_token"'


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS)
def test_a_valid_key_opens_every_endpoint(client, method, url, body):
    response = call(client, method, url, body, **bearer(ORDERS_KEY))
    assert response.status_code in {200, 404}, response.content
    assert response.status_code != 401


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {ORDERS_KEY}",
        f"Token {ORDERS_KEY}",
        ORDERS_KEY,
        "Bearer",
        "Bearer ",
        f"Bearer {ORDERS_KEY} {ORDERS_KEY}",
        f"Bearer {ORDERS_KEY}x",
        f"Bearer {ORDERS_KEY[:-1]}",
        f"Bearer {hash_api_key(ORDERS_KEY)}",  # the configured digest is not the key
        "Bearer " + "k" * 5000,
        "",
    ],
    # the key is generated per process: ids name the cases so that every process collects
    # the same tests (pytest-xdist compares them)
    ids=[
        "basic",
        "token",
        "no-scheme",
        "bearer-alone",
        "bearer-empty",
        "two-keys",
        "key-and-more",
        "key-short",
        "key-digest",
        "long",
        "empty",
    ],
)
def test_keys_of_another_format_are_401(client, header):
    response = client.get(f"/internal/auth/users/{USER_ID}", HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"].startswith('Bearer realm="internal"')


def test_scheme_name_is_case_insensitive(client):
    response = client.get(
        f"/internal/auth/users/{USER_ID}", HTTP_AUTHORIZATION=f"bearer {ORDERS_KEY}"
    )
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS)
def test_a_valid_gateway_identity_assertion_is_not_accepted(client, method, url, body):
    staff = User.objects.create_user(
        "staff@example.com", is_staff=True, email_verified_at="2025-01-01T00:00:00Z"
    )
    response = call(client, method, url, body, **identity_headers(staff))
    assert_error(response, 401, "not_authenticated")


def test_a_user_access_token_is_not_an_api_key(client):
    from auth_backend.tokens.services.issuing import issue_token_pair

    user = User.objects.create_user("ada@example.com", email_verified_at="2025-01-01T00:00:00Z")
    access_token = issue_token_pair(user).access_token
    response = client.get(f"/internal/auth/users/{user.pk}", **bearer(access_token))
    assert_error(response, 401, "invalid_api_key")


def test_no_configured_keys_refuses_everyone(client, settings):
    settings.INTERNAL_API_KEYS = ()
    response = client.get(f"/internal/auth/users/{USER_ID}", **bearer(ORDERS_KEY))
    assert_error(response, 401, "invalid_api_key")


def test_a_caller_may_hold_two_keys_during_rotation(client, settings):
    new_key = generate_api_key()
    settings.INTERNAL_API_KEYS = parse_api_keys(
        f"orders:{hash_api_key(ORDERS_KEY)},orders:{hash_api_key(new_key)}"
    )
    for key in (ORDERS_KEY, new_key):
        response = client.get(f"/internal/auth/users/{USER_ID}", **bearer(key))
        assert_error(response, 404, "not_found")


def test_internal_responses_are_not_cacheable(client):
    response = client.get(f"/internal/auth/users/{USER_ID}", **bearer(ORDERS_KEY))
    assert response["Cache-Control"] == "no-store"
    response = client.get(f"/internal/auth/users/{USER_ID}")
    assert response["Cache-Control"] == "no-store"


# --- the caller is known and logged ------------------------------------------------------------


def internal_log_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "auth_backend.internal.views"]


def test_the_caller_name_is_request_auth_and_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="auth_backend.internal")
    client.get(f"/internal/auth/users/{USER_ID}", **bearer(CATALOG_KEY))
    client.post(
        "/internal/auth/validate-token",
        {"token": "x"},
        content_type="application/json",
        **bearer(ORDERS_KEY),
    )

    records = internal_log_records(caplog)
    assert [(r.caller, r.endpoint, r.method, r.status) for r in records] == [
        ("catalog", "user-detail", "GET", 404),
        ("orders", "validate-token", "POST", 200),
    ]


def test_refused_requests_are_logged_without_a_caller_or_the_key(client, caplog):
    caplog.set_level(logging.INFO, logger="auth_backend.internal")
    wrong_key = generate_api_key()
    client.get("/internal/auth/check-email/ada%40example.com", **bearer(wrong_key))

    [record] = internal_log_records(caplog)
    assert (record.caller, record.endpoint, record.status) == (None, "check-email", 401)
    assert wrong_key not in caplog.text


def test_request_auth_is_the_internal_caller(rf, settings):
    from rest_framework.request import Request

    from auth_backend.internal.authentication import (
        InternalApiKeyAuthentication,
        InternalCaller,
    )

    request = Request(
        rf.get("/", **bearer(CATALOG_KEY)), authenticators=[InternalApiKeyAuthentication()]
    )
    assert request.auth == InternalCaller("catalog")
    assert request.user is None  # a service is not a user


# --- key matching ------------------------------------------------------------------------------


def test_caller_for_key_compares_every_configured_key(monkeypatch, internal_keys):
    compared: list[bytes] = []
    real_compare = keys_module.hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real_compare(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting_compare)
    many = (*internal_keys, *(ConfiguredKey(f"svc{i}", hash_api_key(f"k{i}")) for i in range(5)))

    assert caller_for_key(ORDERS_KEY, many) == "orders"  # the first entry matches ...
    assert len(compared) == len(many)  # ... and every other one is still compared
    compared.clear()
    assert caller_for_key("unknown-key", many) is None
    assert len(compared) == len(many)


def test_caller_for_key_rejects_empty_and_oversized_keys(internal_keys):
    assert caller_for_key("", internal_keys) is None
    huge = "k" * (keys_module.MAX_API_KEY_LENGTH + 1)
    assert caller_for_key(huge, (ConfiguredKey("big", hash_api_key(huge)),)) is None


def test_hash_api_key_is_sha256_hex():
    assert hash_api_key("abc") == hashlib.sha256(b"abc").hexdigest()


def test_generated_keys_are_random_and_long():
    generated = {generate_api_key() for _ in range(20)}
    assert len(generated) == 20
    assert all(len(key) >= keys_module.MIN_API_KEY_LENGTH for key in generated)


# --- INTERNAL_API_KEYS parsing -----------------------------------------------------------------


def test_parse_api_keys_reads_pairs_and_normalises_digests():
    digest = hash_api_key("a")
    parsed = parse_api_keys(f" orders : {digest.upper()} ,, catalog.v2:{hash_api_key('b')} ,")
    assert parsed == (
        ConfiguredKey("orders", digest),
        ConfiguredKey("catalog.v2", hash_api_key("b")),
    )
    assert parse_api_keys("") == ()
    assert parse_api_keys(" , ") == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("orders", "entry 1 must be caller:sha256hex"),
        (f":{hash_api_key('a')}", "entry 1 must be caller:sha256hex"),
        (f"ord ers:{hash_api_key('a')}", "entry 1 must be caller:sha256hex"),
        (f"orders:{hash_api_key('a')},catalog:abc", "entry 2 (catalog) must carry a SHA-256"),
        (f"orders:{hash_api_key('a')[:-1]}g", "entry 1 (orders) must carry a SHA-256"),
        (f"orders:{hash_api_key('a')},catalog:{hash_api_key('a')}", "repeats the key of orders"),
    ],
)
def test_parse_api_keys_refuses_bad_configuration(raw, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)) as caught:
        parse_api_keys(raw)
    assert hash_api_key("a") not in str(caught.value)  # digests are never echoed


def test_configured_key_validates_its_fields():
    with pytest.raises(ValueError, match="caller names"):
        ConfiguredKey("bad name", hash_api_key("a"))
    with pytest.raises(ValueError, match="digests"):
        ConfiguredKey("orders", "not-a-digest")


def test_settings_read_internal_api_keys_from_the_environment(monkeypatch):
    # A fresh copy of the settings module; the loaded one is left alone.
    monkeypatch.setenv("INTERNAL_API_KEYS", f"orders:{hash_api_key(ORDERS_KEY)}")
    module = runpy.run_path(auth_backend.settings.__file__)
    assert module["INTERNAL_API_KEYS"] == (ConfiguredKey("orders", hash_api_key(ORDERS_KEY)),)
    assert "auth_backend.internal" in module["INSTALLED_APPS"]

    monkeypatch.setenv("INTERNAL_API_KEYS", "orders:plaintext-key")
    with pytest.raises(ImproperlyConfigured, match="INTERNAL_API_KEYS entry 1"):
        runpy.run_path(auth_backend.settings.__file__)


# --- manage.py hash_api_key --------------------------------------------------------------------


def run_hash_api_key(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("hash_api_key", *args, stdout=out)
    return out.getvalue()


def test_hash_api_key_generates_a_key_that_authenticates(client, settings):
    output = run_hash_api_key("billing").splitlines()
    key = output[1].strip()
    entry = output[3].strip()
    assert entry == f"billing:{hash_api_key(key)}"

    settings.INTERNAL_API_KEYS = parse_api_keys(entry)
    response = client.get(f"/internal/auth/users/{USER_ID}", **bearer(key))
    assert_error(response, 404, "not_found")


def test_hash_api_key_hashes_a_key_from_stdin(monkeypatch):
    key = "an-existing-key-of-sufficient-length-0123"
    output = run_hash_api_key("orders", "--stdin", stdin=f"{key}\n", monkeypatch=monkeypatch)
    assert output.splitlines() == ["INTERNAL_API_KEYS entry:", f"  orders:{hash_api_key(key)}"]
    assert key not in output


@pytest.mark.parametrize("stdin", ["short\n", "\n", "has a space in the middle of the key!!\n"])
def test_hash_api_key_refuses_weak_keys(monkeypatch, stdin):
    with pytest.raises(CommandError, match="must be 32-256 characters"):
        run_hash_api_key("orders", "--stdin", stdin=stdin, monkeypatch=monkeypatch)


def test_hash_api_key_refuses_bad_caller_names():
    with pytest.raises(CommandError, match="caller name"):
        run_hash_api_key("orders:v2")


# --- deploy check ------------------------------------------------------------------------------


def test_deploy_check_warns_when_no_keys_are_configured(settings):
    settings.INTERNAL_API_KEYS = ()
    [warning] = internal_api_keys_configured()
    assert warning.id == "internal.W001"
    settings.INTERNAL_API_KEYS = parse_api_keys(f"orders:{hash_api_key(ORDERS_KEY)}")
    assert internal_api_keys_configured() == []
