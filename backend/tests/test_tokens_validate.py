"""validate_access_token: everything the edge checks, plus revocation and the user's state."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from auth_backend.accounts.models import User
from auth_backend.tokens.exceptions import InvalidAccessToken
from auth_backend.tokens.keys import signing_keys
from auth_backend.tokens.models import AccessTokenRecord, TokenNotBefore
from auth_backend.tokens.services.issuing import issue_token_pair
from auth_backend.tokens.services.revoking import revoke_family_of
from auth_backend.tokens.services.validation import AccessClaims, validate_access_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> User:
    return User.objects.create_user("edsger@example.com", email_verified_at=timezone.now())


@pytest.fixture
def pair(user):
    return issue_token_pair(user)


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _resign(token: str, **changes) -> str:
    """The same token with changed claims, correctly signed with our current key."""
    key = signing_keys.current()
    claims = {**_claims(token), **changes}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


def _reason(token: str) -> str:
    with pytest.raises(InvalidAccessToken) as excinfo:
        validate_access_token(token)
    return excinfo.value.reason


def test_valid_token_gives_its_claims_and_user(user, pair):
    claims = validate_access_token(pair.access_token)
    assert isinstance(claims, AccessClaims)
    assert claims.sub == str(user.pk)
    assert claims.user == user
    assert claims.email == user.email
    assert claims.roles == ("user",)
    assert claims.scopes == ("profile",)
    assert claims.amr == ("pwd",)
    assert claims.jti == _claims(pair.access_token)["jti"]
    assert claims.exp - claims.iat == 900


def test_resigned_unchanged_token_is_still_valid(pair):
    """Guards the helper: a failure below is due to the change, not to re-signing."""
    assert validate_access_token(_resign(pair.access_token)).jti


def test_expired(pair):
    now = int(time.time())
    assert (
        _reason(_resign(pair.access_token, iat=now - 1000, nbf=now - 1000, exp=now - 100))
        == "expired"
    )


def test_not_yet_valid(pair):
    assert _reason(_resign(pair.access_token, nbf=int(time.time()) + 600)) == "not_yet_valid"


def test_wrong_audience(pair):
    assert _reason(_resign(pair.access_token, aud="another-api")) == "wrong_audience"


def test_wrong_issuer(pair):
    assert _reason(_resign(pair.access_token, iss="https://evil.example")) == "wrong_issuer"


def test_audience_setting_is_enforced(pair, settings):
    settings.JWT_AUDIENCE = "a-different-audience"
    assert _reason(pair.access_token) == "wrong_audience"


def test_token_use_must_be_access(pair):
    assert _reason(_resign(pair.access_token, token_use="refresh")) == "wrong_token_use"
    assert _reason(_resign(pair.access_token, token_use=None)) == "wrong_token_use"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "jti", "sub"])
def test_required_claims(pair, claim):
    assert _reason(_resign(pair.access_token, **{claim: None})) == "missing_claim"


def test_bad_signature_with_a_foreign_key_under_our_kid(pair):
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        _claims(pair.access_token),
        foreign,
        algorithm="RS256",
        headers={"kid": signing_keys.current().kid},
    )
    assert _reason(forged) == "bad_signature"


def test_tampered_payload_fails_the_signature(pair):
    header, _payload, signature = pair.access_token.split(".")
    other = issue_token_pair(User.objects.create_user("mallory@example.com")).access_token
    assert _reason(".".join([header, other.split(".")[1], signature])) == "bad_signature"


def test_hs256_with_the_public_key_is_rejected(pair):
    """Algorithm confusion: the key's algorithm decides, not the token's header."""
    jwk = signing_keys.current().public_jwk
    forged = jwt.encode(
        _claims(pair.access_token),
        jwk["n"].encode(),
        algorithm="HS256",
        headers={"kid": jwk["kid"]},
    )
    assert _reason(forged) == "bad_signature"


def test_unknown_kid(pair):
    key = signing_keys.current()
    token = jwt.encode(
        _claims(pair.access_token),
        key.private_key,
        algorithm="RS256",
        headers={"kid": "not-our-key"},
    )
    assert _reason(token) == "unknown_key"
    no_kid = jwt.encode(_claims(pair.access_token), key.private_key, algorithm="RS256")
    assert _reason(no_kid) == "unknown_key"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 9000])
def test_malformed(token):
    assert _reason(token) == "malformed"


def test_revoked_jti(pair):
    AccessTokenRecord.objects.update(revoked_at=timezone.now())
    assert _reason(pair.access_token) == "revoked"


def test_revoked_session(pair):
    revoke_family_of(pair.refresh_token, reason="logout")
    assert _reason(pair.access_token) == "revoked"


def test_issued_before_the_users_not_before(user, pair):
    TokenNotBefore.objects.create(user=user, not_before=timezone.now() + timedelta(seconds=2))
    assert _reason(pair.access_token) == "revoked"


def test_token_never_issued_by_us_even_if_signed(pair):
    assert (
        _reason(_resign(pair.access_token, jti="00000000-0000-0000-0000-000000000000"))
        == "unknown_token"
    )


def test_inactive_user(user, pair):
    user.is_active = False
    user.save()
    assert _reason(pair.access_token) == "inactive_user"


def test_deleted_user(user, pair):
    token = pair.access_token
    user.delete()
    assert _reason(token) == "unknown_token"  # its records went with it


def test_error_renders_in_the_error_shape_with_the_reason():
    from auth_backend.core.errors import drf_exception_handler

    response = drf_exception_handler(InvalidAccessToken("expired"), {})
    assert response.status_code == 401
    assert response.data["error"]["code"] == "invalid_token"
    assert response.data["error"]["details"] == {"reason": "expired"}
