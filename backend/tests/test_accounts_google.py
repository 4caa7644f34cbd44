"""Sign-in with Google, against a local JWKS server and locally signed ID tokens."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from auth_backend.accounts.models import User
from auth_backend.accounts.services import google
from auth_backend.events.models import OutboxEvent
from auth_backend.tokens.services.validation import validate_access_token

pytestmark = pytest.mark.django_db

URL = "/api/auth/google/login"
CLIENT_ID = "1234-test.apps.googleusercontent.com"
GOOGLE_KID = "google-test-kid"
_GOOGLE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _JwksServer:
    def __init__(self) -> None:
        self.requests = 0
        jwk = RSAAlgorithm.to_jwk(_GOOGLE_KEY.public_key(), as_dict=True)
        jwk.update(kid=GOOGLE_KID, alg="RS256", use="sig")
        self.body = json.dumps({"keys": [jwk]}).encode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/v3/certs"


@pytest.fixture
def jwks_server(settings: Any) -> Iterator[_JwksServer]:
    server = _JwksServer()
    thread = threading.Thread(
        target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    settings.GOOGLE_JWKS_URL = server.url
    settings.GOOGLE_CLIENT_ID = CLIENT_ID
    google._jwk_clients.clear()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    google._jwk_clients.clear()


def id_token(*, key: Any = _GOOGLE_KEY, kid: str = GOOGLE_KID, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": "110169484474386276334",
        "email": "Alan.Turing@Example.com",
        "email_verified": True,
        "given_name": "Alan",
        "family_name": "Turing",
        "picture": "https://lh3.googleusercontent.com/a/photo",
        "iat": now,
        "exp": now + 3600,
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def _login(client, token: str):
    return client.post(URL, {"id_token": token}, content_type="application/json")


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_first_sign_in_creates_a_verified_user_without_password(client, jwks_server):
    response = _login(client, id_token())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert response["Cache-Control"] == "no-store"
    user = User.objects.get()
    assert user.email == "alan.turing@example.com"
    assert user.google_sub == "110169484474386276334"
    assert user.email_verified
    assert not user.has_usable_password()
    assert (user.first_name, user.last_name) == ("Alan", "Turing")
    assert user.avatar_url == "https://lh3.googleusercontent.com/a/photo"
    claims = validate_access_token(body["access_token"])
    assert claims.sub == str(user.pk)
    assert claims.amr == ("google",)
    events = dict(OutboxEvent.objects.values_list("event_type", "payload"))
    assert events["user.registered"] == {"method": "google"}
    assert events["user.login_succeeded"] == {
        "method": "google",
        "amr": ["google"],
        "linked_by": "created",
    }


def test_links_by_google_sub_first(client, jwks_server):
    linked = User.objects.create_user(
        "old-address@example.com", google_sub="sub-1", email_verified_at=timezone.now()
    )
    # another account owns the token's email; the Google subject wins
    User.objects.create_user("alan.turing@example.com", email_verified_at=timezone.now())
    response = _login(client, id_token(sub="sub-1"))
    assert response.status_code == 200
    assert validate_access_token(response.json()["access_token"]).sub == str(linked.pk)
    assert User.objects.count() == 2


def test_links_by_verified_email_second_and_keeps_the_password(client, jwks_server):
    user = User.objects.create_user(
        "alan.turing@example.com", password="a long passphrase 1", email_verified_at=timezone.now()
    )
    response = _login(client, id_token())
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.google_sub == "110169484474386276334"
    assert user.check_password("a long passphrase 1")
    assert validate_access_token(response.json()["access_token"]).sub == str(user.pk)
    assert (
        OutboxEvent.objects.get(event_type="user.login_succeeded").payload["linked_by"] == "email"
    )
    assert not OutboxEvent.objects.filter(event_type="user.registered").exists()


def test_linking_an_unverified_account_discards_the_squatters_password(client, jwks_server):
    squatted = User.objects.create_user(
        "alan.turing@example.com", password="the squatter's password"
    )
    assert _login(client, id_token()).status_code == 200
    squatted.refresh_from_db()
    assert squatted.email_verified
    assert squatted.google_sub == "110169484474386276334"
    assert not squatted.has_usable_password()


def test_email_linked_to_another_google_account_is_a_conflict(client, jwks_server):
    User.objects.create_user(
        "alan.turing@example.com", google_sub="someone-else", email_verified_at=timezone.now()
    )
    response = _login(client, id_token())
    assert response.status_code == 409
    assert _code(response) == "google_account_conflict"


@pytest.mark.parametrize("flag", [False, None, "false"])
def test_unverified_google_email_is_rejected(client, jwks_server, flag):
    response = _login(client, id_token(email_verified=flag))
    assert response.status_code == 403
    assert _code(response) == "google_email_not_verified"
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-client.apps.googleusercontent.com"},
        {"iss": "https://accounts.evil.example"},
        {"exp": int(time.time()) - 60},
        {"sub": None},
        {"email": None},
    ],
)
def test_invalid_claims_are_rejected(client, jwks_server, claims):
    response = _login(client, id_token(**claims))
    assert response.status_code == 401
    assert _code(response) == "invalid_google_token"
    assert not User.objects.exists()


def test_both_google_issuer_spellings_are_accepted(client, jwks_server):
    assert _login(client, id_token(iss="accounts.google.com")).status_code == 200


def test_one_of_several_configured_client_ids_is_accepted(client, jwks_server, settings):
    settings.GOOGLE_CLIENT_ID = f"web.apps.googleusercontent.com, {CLIENT_ID}"
    assert _login(client, id_token()).status_code == 200


def test_signature_by_another_key_is_rejected(client, jwks_server):
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _login(client, id_token(key=forger))
    assert response.status_code == 401
    assert _code(response) == "invalid_google_token"


def test_unknown_kid_and_garbage_are_rejected(client, jwks_server):
    assert _code(_login(client, id_token(kid="unknown"))) == "invalid_google_token"
    assert _code(_login(client, "not.a.jwt")) == "invalid_google_token"


def test_jwks_is_fetched_once_and_cached(client, jwks_server):
    for sub in ("a", "b", "c"):
        assert _login(client, id_token(sub=sub, email=f"{sub}@example.com")).status_code == 200
    assert jwks_server.requests == 1


def test_missing_client_id_is_a_clear_503(client, jwks_server, settings):
    settings.GOOGLE_CLIENT_ID = ""
    response = _login(client, id_token())
    assert response.status_code == 503
    assert _code(response) == "google_login_unavailable"
    assert jwks_server.requests == 0


def test_unreachable_google_jwks_is_503(client, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.GOOGLE_CLIENT_ID = CLIENT_ID
    settings.GOOGLE_JWKS_URL = f"http://127.0.0.1:{port}/certs"
    google._jwk_clients.clear()
    response = _login(client, id_token())
    assert response.status_code == 503
    assert _code(response) == "google_unavailable"


def test_disabled_account_cannot_sign_in(client, jwks_server):
    User.objects.create_user("x@example.com", google_sub="110169484474386276334", is_active=False)
    response = _login(client, id_token())
    assert response.status_code == 403
    assert _code(response) == "account_disabled"
    assert not OutboxEvent.objects.filter(event_type="user.login_succeeded").exists()


def test_missing_id_token_is_400(client, jwks_server):
    response = _login(client, "")
    assert response.status_code == 400
    assert "id_token" in response.json()["error"]["details"]["fields"]


def test_two_factor_users_get_the_login_challenge_then_finish_with_a_code(client, jwks_server):
    import pyotp

    secret = pyotp.random_base32()
    user = User.objects.create_user(
        "alan.turing@example.com",
        google_sub="110169484474386276334",
        email_verified_at=timezone.now(),
        totp_secret=secret,
        totp_enabled=True,
    )
    response = _login(client, id_token())
    assert response.status_code == 200
    body = response.json()
    assert body["requires_2fa"] is True
    assert set(body) == {"requires_2fa", "challenge_token"}
    assert not OutboxEvent.objects.filter(event_type="user.login_succeeded").exists()

    finished = client.post(
        "/api/auth/login/2fa",
        {"challenge_token": body["challenge_token"], "code": pyotp.TOTP(secret).now()},
        content_type="application/json",
    )
    assert finished.status_code == 200
    claims = validate_access_token(finished.json()["access_token"])
    assert claims.sub == str(user.pk)
    assert claims.amr == ("google", "otp")
