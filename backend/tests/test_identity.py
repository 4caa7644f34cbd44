"""Identity from the gateway (docs/identity-assertion.md): only a valid assertion authenticates."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.urls import include, path
from identity_support import assertion, identity_headers
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_backend.accounts.models import User


class WhoAmI(APIView):
    def get(self, request: Any) -> Response:
        return Response(
            {
                "id": str(request.user.pk),
                "roles": list(request.auth.roles),
                "jti": request.auth.token_id,
            }
        )


urlpatterns = [
    path("test/whoami/", WhoAmI.as_view()),
    path("", include("auth_backend.urls")),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]


@pytest.fixture
def user() -> User:
    return User.objects.create_user("Ann@Example.com", "a-long-password-1", is_seller=True)


def test_valid_assertion_authenticates(client, user):
    response = client.get("/test/whoami/", **identity_headers(user, jti="tok-1"))
    assert response.status_code == 200
    assert response.json() == {"id": str(user.pk), "roles": ["user", "seller"], "jti": "tok-1"}


def test_assertion_alone_is_enough(client, user):
    response = client.get("/test/whoami/", HTTP_X_IDENTITY_ASSERTION=assertion(user))
    assert response.status_code == 200


def _status(client, token: str, **extra: str) -> int:
    return client.get("/test/whoami/", HTTP_X_IDENTITY_ASSERTION=token, **extra).status_code


def test_plain_headers_without_assertion_are_anonymous(client, user):
    response = client.get(
        "/test/whoami/",
        HTTP_X_USER_ID=str(user.pk),
        HTTP_X_USER_EMAIL=user.email,
        HTTP_X_USER_ROLES="user,staff",
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "other-service"},
        {"iss": "someone-else"},
        {"exp": int(time.time()) - 60, "iat": int(time.time()) - 90},
        {"exp": int(time.time()) + 600},  # lifetime over 60 s
        {"jti": None},
    ],
)
def test_bad_claims_are_anonymous(client, user, claims):
    claims = {k: v for k, v in claims.items()}
    token = assertion(user, **{k: v for k, v in claims.items() if v is not None})
    if claims.get("jti", "") is None:
        import jwt
        from identity_support import _PRIVATE_KEY, GATEWAY_KID

        body = jwt.decode(token, options={"verify_signature": False})
        del body["jti"]
        token = jwt.encode(body, _PRIVATE_KEY, algorithm="EdDSA", headers={"kid": GATEWAY_KID})
    assert _status(client, token) == 401


def test_forged_signature_is_anonymous(client, user):
    assert _status(client, assertion(user, key=Ed25519PrivateKey.generate())) == 401


def test_unknown_kid_is_anonymous(client, user):
    assert _status(client, assertion(user, kid="nope")) == 401


def test_hs256_with_public_key_is_rejected(client, user, gateway_jwks):
    """The classic confusion attack: HMAC keyed with the published public key."""
    import base64
    import hashlib
    import hmac
    import json

    import jwt

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    body = jwt.decode(assertion(user), options={"verify_signature": False})
    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": "gw-test-1"}).encode())
        + b"."
        + b64(json.dumps(body).encode())
    )
    mac = hmac.new(gateway_jwks.read_bytes(), signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + b64(mac)).decode()
    assert _status(client, token) == 401


@pytest.mark.parametrize(
    "header,value",
    [
        ("HTTP_X_USER_ID", "00000000-0000-0000-0000-000000000000"),
        ("HTTP_X_USER_ROLES", "user,seller,staff"),
        ("HTTP_X_USER_EMAIL", "mallory@example.com"),
        ("HTTP_X_USER_IMPERSONATE", "1"),
    ],
)
def test_mismatching_plain_header_voids_identity(client, user, header, value):
    headers = identity_headers(user)
    headers[header] = value
    assert client.get("/test/whoami/", **headers).status_code == 401


def test_inactive_or_unknown_user_is_anonymous(client, user):
    user.is_active = False
    user.save()
    assert client.get("/test/whoami/", **identity_headers(user)).status_code == 401
