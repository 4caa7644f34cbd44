"""Signing keys: access-token claims, JWKS, rotation, encryption at rest."""

from __future__ import annotations

import io
import json
import time

import jwt
import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from auth_backend.accounts.models import User
from auth_backend.tokens import keys
from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.keys import rotate_signing_key, signing_keys
from auth_backend.tokens.models import SigningKey, SigningKeyState
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

JWKS_URL = "/api/auth/.well-known/jwks.json"


@pytest.fixture
def user() -> User:
    return User.objects.create_user(
        "ada@example.com", first_name="Ada", email_verified_at=timezone.now()
    )


def _jwks(client) -> dict:
    response = client.get(JWKS_URL)
    assert response.status_code == 200
    return response.json()


def _public_key_from_jwks(document: dict, kid: str):
    [jwk] = [k for k in document["keys"] if k["kid"] == kid]
    return RSAAlgorithm.from_jwk(jwk)


def test_first_use_creates_a_current_key_and_logs_it(user, caplog):
    assert not SigningKey.objects.exists()
    with caplog.at_level("WARNING", logger="auth_backend.tokens.keys"):
        issue_token_pair(user)
    [key] = SigningKey.objects.all()
    assert key.state == SigningKeyState.CURRENT
    assert key.algorithm == "RS256"
    assert any("generated one" in record.getMessage() for record in caplog.records)


def test_access_token_claims_and_kid_verify_with_the_jwks_public_key(client, user, settings):
    settings.JWT_ISSUER = "https://auth.test"
    settings.JWT_AUDIENCE = "marketplace-test"
    settings.ACCESS_TOKEN_TTL_SECONDS = 600
    before = int(time.time())
    pair = issue_token_pair(user, amr=("pwd", "otp"))
    header = jwt.get_unverified_header(pair.access_token)
    assert header["alg"] == "RS256"
    document = _jwks(client)
    public_key = _public_key_from_jwks(document, header["kid"])
    claims = jwt.decode(
        pair.access_token,
        public_key,
        algorithms=["RS256"],
        audience="marketplace-test",
        issuer="https://auth.test",
    )
    assert claims["sub"] == str(user.pk)
    assert claims["email"] == "ada@example.com"
    assert claims["roles"] == ["user"]
    assert claims["scope"] == "profile"
    assert claims["token_use"] == "access"
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["nbf"] == claims["iat"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) == 36
    assert pair.expires_in == 600
    assert pair.as_response() == {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": 600,
    }


def test_sellers_and_staff_get_their_roles_and_the_seller_scope(user):
    user.is_seller = True
    user.is_staff = True
    user.save()
    claims = jwt.decode(issue_token_pair(user).access_token, options={"verify_signature": False})
    assert claims["roles"] == ["user", "seller", "staff"]
    assert claims["scope"] == "profile seller"


def test_jwks_is_cacheable_and_public_only(client, user):
    issue_token_pair(user)
    response = client.get(JWKS_URL)
    assert response.status_code == 200
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert cache_control == {"public", "max-age=300"}
    [jwk] = response.json()["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert jwk["kid"] == keys.jwk_thumbprint(jwk)
    # the trailing-slash form answers too (the gateway routes by prefix)
    assert client.get(JWKS_URL + "/").json() == response.json()


def test_jwks_creates_the_first_key_itself(client):
    assert len(_jwks(client)["keys"]) == 1


def test_rotation_publishes_current_and_previous_and_retires_older(client, user):
    first = issue_token_pair(user).access_token
    first_kid = jwt.get_unverified_header(first)["kid"]

    rotate_signing_key()
    second = issue_token_pair(user).access_token
    second_kid = jwt.get_unverified_header(second)["kid"]
    assert second_kid != first_kid
    assert [k["kid"] for k in _jwks(client)["keys"]] == [second_kid, first_kid]
    # tokens signed by the previous key still validate
    assert validate_access_token(first).sub == str(user.pk)
    assert validate_access_token(second).sub == str(user.pk)

    rotate_signing_key()
    third_kid = SigningKey.objects.get(state=SigningKeyState.CURRENT).kid
    assert [k["kid"] for k in _jwks(client)["keys"]] == [third_kid, second_kid]
    retired = SigningKey.objects.get(kid=first_kid)
    assert retired.state == SigningKeyState.RETIRED
    assert retired.private_key_encrypted == ""
    assert retired.retired_at is not None
    # tokens signed by a retired key do not validate any more
    with pytest.raises(InvalidAccessToken) as excinfo:
        validate_access_token(first)
    assert excinfo.value.reason == "unknown_key"
    assert validate_access_token(second).sub == str(user.pk)


def test_rotation_by_another_process_is_noticed_without_restart(user):
    """The per-process cache reloads when the published keys change in the database."""
    issue_token_pair(user)
    old_kid = signing_keys.current().kid
    # What another process's rotation leaves behind: different rows, same process cache.
    SigningKey.objects.filter(kid=old_kid).update(state=SigningKeyState.PREVIOUS)
    new = keys._new_key_row("RS256")
    new.save()
    token = issue_token_pair(user).access_token
    assert jwt.get_unverified_header(token)["kid"] == new.kid


def test_keys_are_parsed_once_per_process(user, monkeypatch):
    issue_token_pair(user)
    calls = []
    real = keys.decrypt_private_key
    monkeypatch.setattr(keys, "decrypt_private_key", lambda t: calls.append(1) or real(t))
    for _ in range(3):
        issue_token_pair(user)
    assert calls == []


def test_private_key_is_encrypted_at_rest_with_a_key_from_secret_key(user, settings):
    issue_token_pair(user)
    row = SigningKey.objects.get()
    assert "PRIVATE KEY" not in row.private_key_encrypted
    pem = keys.decrypt_private_key(row.private_key_encrypted)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-django-secret-key-0123456789-abcdefghijklmnop"
    assert keys.decrypt_private_key(row.private_key_encrypted) == pem  # via the fallback

    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(keys.SigningKeyUnavailable):
        keys.decrypt_private_key(row.private_key_encrypted)


def test_es256_keys_can_be_configured(client, user, settings):
    settings.ACCESS_TOKEN_ALGORITHM = "ES256"
    token = issue_token_pair(user).access_token
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    [jwk] = _jwks(client)["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
    assert validate_access_token(token).sub == str(user.pk)


def test_only_one_current_and_one_previous_key_can_exist(user):
    issue_token_pair(user)
    duplicate = keys._new_key_row("RS256")
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_rotate_signing_key_command(user):
    issue_token_pair(user)
    old_kid = SigningKey.objects.get(state=SigningKeyState.CURRENT).kid
    out = io.StringIO()
    call_command("rotate_signing_key", stdout=out)
    current = SigningKey.objects.get(state=SigningKeyState.CURRENT)
    assert f"current signing key: {current.kid} (RS256)" in out.getvalue()
    assert f"previous signing key: {old_kid} (RS256)" in out.getvalue()
    assert SigningKey.objects.get(kid=old_kid).state == SigningKeyState.PREVIOUS


def test_jwks_document_is_plain_json(client, user):
    issue_token_pair(user)
    rotate_signing_key()
    body = client.get(JWKS_URL).content
    assert json.loads(body) == keys.jwks_document()
    assert len(json.loads(body)["keys"]) == 2


def test_an_undecryptable_key_stops_issuing_but_not_verifying(client, user, settings):
    token = issue_token_pair(user).access_token
    signing_keys.invalidate()
    settings.SECRET_KEY = "a-different-secret-without-fallback-0123456789-abcdefghij"
    with pytest.raises(keys.SigningKeyUnavailable):
        issue_token_pair(user)
    assert validate_access_token(token).sub == str(user.pk)
    assert len(_jwks(client)["keys"]) == 1
