"""Forged, tampered and ill-typed access tokens at the edge.

Every case sends the token to a protected backend route (``/api/auth/profile``) and to the
protected tap, with identity headers claiming another user, and asserts the status and that
no upstream saw the request (refused) or that it saw only the token owner's identity as the
gateway signs it (accepted). Tokens signed with the issuer's real key are the controls, and
the cases only the issuer could make (a parser differential needs the signature to hold).

edge-jwt's rules: ``kong-plugins/src/edge_plugins/jwt/verify.py`` (RS256 only, the algorithm
pinned to the key, ``crit``/``b64`` refused, 30 s leeway, 900 s maximum lifetime, 8 KiB).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from tests.security.probes import (
    AUDIENCE,
    ISSUER,
    accepted_as,
    assert_upstream_identity,
    auth,
    b64json,
    b64url,
    refused_everywhere,
    refused_unknown_key,
    spoofed,
)
from tests.security.stack import Stack
from tests.support.backend import User
from tests.support.edge_jwt import JwksEndpoint, serve_jwks

LEEWAY = 30
MAX_LIFETIME = 900


def claims_for(user: User, **overrides: Any) -> dict[str, Any]:
    """An access token's claims as the backend issues them; ``None`` removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.id,
        "email": user.email,
        "roles": ["user"],
        "scope": "profile",
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "token_use": "access",
        "amr": ["pwd"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def hs(alg: str, secret: bytes, header: dict[str, Any], payload: str) -> str:
    """A compact JWS signed with HMAC by hand (PyJWT refuses some of these secrets)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64json({**header, 'alg': alg})}.{payload}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def rs256(private_pem: bytes, header: dict[str, Any], payload: str) -> str:
    """A compact JWS signed with RS256 by hand: any header, even one PyJWT would refuse."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = f"{b64json({**header, 'alg': 'RS256'})}.{payload}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def payload_of(user: User, **overrides: Any) -> str:
    return b64json(claims_for(user, **overrides))


def test_control_a_token_of_the_issuer_is_accepted(stack: Stack, user: User, victim: User) -> None:
    """The control every refusal below differs from in one respect."""
    accepted_as(stack, auth(stack.issuer.mint(claims_for(user))), user, victim)


# --- alg none -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "absent", "kept"])
def test_alg_none(stack: Stack, user: User, victim: User, alg: str, signature: str) -> None:
    _, body, real_signature = user.access_token.split(".")
    forged_head = b64json({"alg": alg, "typ": "JWT", "kid": stack.issuer.kid})
    token = {
        "empty": f"{forged_head}.{body}.",
        "absent": f"{forged_head}.{body}",
        "kept": f"{forged_head}.{body}.{real_signature}",
    }[signature]
    refused_everywhere(stack, auth(token), victim)


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA", "RS512", "rs256", "RS256 "])
def test_other_algorithms_with_the_issuer_key(
    stack: Stack, user: User, victim: User, alg: str
) -> None:
    """Only RS256 is allowed, spelled exactly (kong/kong.yml ``algorithms``)."""
    _, body, signature = user.access_token.split(".")
    forged_head = b64json({"alg": alg, "typ": "JWT", "kid": stack.issuer.kid})
    refused_everywhere(stack, auth(f"{forged_head}.{body}.{signature}"), victim)


# --- HS/RS key confusion ------------------------------------------------------------------


def _public_key_encodings(stack: Stack) -> dict[str, bytes]:
    jwks = stack.client.get("/api/auth/.well-known/jwks.json")
    assert jwks.status_code == 200, jwks.text
    (jwk,) = [k for k in jwks.json()["keys"] if k["kid"] == stack.issuer.kid]
    public = RSAAlgorithm.from_jwk(json.dumps(jwk))
    assert isinstance(public, rsa.RSAPublicKey)
    pem = serialization.Encoding.PEM
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pkcs1 = serialization.PublicFormat.PKCS1
    spki_pem = public.public_bytes(pem, spki)
    n = public.public_numbers().n
    return {
        "pem-spki": spki_pem,
        "pem-spki-no-newline": spki_pem.rstrip(b"\n"),
        "pem-spki-crlf": spki_pem.replace(b"\n", b"\r\n"),
        "pem-pkcs1": public.public_bytes(pem, pkcs1),
        "pem-body-only": b"".join(spki_pem.splitlines()[1:-1]),
        "der-spki": public.public_bytes(der, spki),
        "der-pkcs1": public.public_bytes(der, pkcs1),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "jwk-as-served": json.dumps(jwk).encode(),
        "jwk-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwks-document": jwks.content,
        "modulus-bytes": n.to_bytes((n.bit_length() + 7) // 8, "big"),
        "modulus-b64url": jwk["n"].encode(),
    }


ENCODINGS = [
    "pem-spki",
    "pem-spki-no-newline",
    "pem-spki-crlf",
    "pem-pkcs1",
    "pem-body-only",
    "der-spki",
    "der-pkcs1",
    "openssh",
    "jwk-as-served",
    "jwk-compact",
    "jwks-document",
    "modulus-bytes",
    "modulus-b64url",
]


@pytest.fixture(scope="module")
def public_key_encodings(stack: Stack) -> dict[str, bytes]:
    return _public_key_encodings(stack)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_published_rsa_key(
    stack: Stack,
    user: User,
    victim: User,
    public_key_encodings: dict[str, bytes],
    alg: str,
    encoding: str,
) -> None:
    """The published RSA public key, in every encoding an HMAC verifier might take it in,
    used as the HMAC secret for a token naming the issuer's kid."""
    header = {"typ": "JWT", "kid": stack.issuer.kid}
    token = hs(alg, public_key_encodings[encoding], header, payload_of(user, sub=victim.id))
    refused_everywhere(stack, auth(token), victim)


# --- kid ----------------------------------------------------------------------------------

KIDS: dict[str, Any] = {
    "traversal-dev-null": "../../../../../../../../dev/null",
    "absolute-dev-null": "/dev/null",
    "traversal-passwd": "../../../../etc/passwd",
    "encoded-traversal": "..%2f..%2f..%2fdev%2fnull",
    "nul-byte": "../../dev/null\u0000.pem",
    "sql-or": "' OR '1'='1",
    "sql-union": "x' UNION SELECT 'secret' --",
    "shell-subst": "$(cat /etc/passwd)",
    "shell-pipe": "k|id",
    "url": "http://127.0.0.1:1/key.pem",
    "crlf-header": "k\r\nX-User-Roles: staff",
    "empty": "",
    "long": "k" * 5000,
    "number": 1,
    "list": ["k"],
    "object": {"$ne": None},
    "null": None,
}


@pytest.mark.parametrize("kid", KIDS, ids=list(KIDS))
@pytest.mark.parametrize("signed", ["hs256-empty-secret", "hs256-kid-as-secret", "rs256-issuer"])
def test_kid_traversal_and_injection(
    stack: Stack, user: User, victim: User, kid: str, signed: str
) -> None:
    """A kid naming a file, a query or a URL selects no key (HS256 with the empty secret
    is what ``/dev/null`` would give); even the issuer's own signature does not pass
    with a kid that is not the issuer's."""
    value = KIDS[kid]
    header: dict[str, Any] = {"typ": "JWT"} if value is None else {"typ": "JWT", "kid": value}
    payload = payload_of(user, sub=victim.id)
    if signed == "rs256-issuer":
        token = rs256(stack.issuer.private_pem, header, payload)
        refused_unknown_key(stack, token, victim)
        return
    secret = b"" if signed == "hs256-empty-secret" else str(value).encode()
    token = hs("HS256", secret, header, payload)
    refused_everywhere(stack, auth(token), victim)


# --- jku / x5u / jwk / x5c / crit ---------------------------------------------------------


ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_PEM = ATTACKER_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
ATTACKER_JWK = {**json.loads(RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key())), "kid": "attacker"}


def _attacker_certificate() -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.local")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ATTACKER_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ATTACKER_KEY, hashes.SHA256())
    )
    return b64url(certificate.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def key_server() -> Iterator[JwksEndpoint]:
    """An attacker's key server: serves the attacker's JWKS and counts every request."""
    endpoint = JwksEndpoint(document={"keys": [ATTACKER_JWK]}, cache_control=None)
    server = serve_jwks(endpoint)
    yield endpoint
    server.shutdown()


def _header_cases(stack: Stack, server: JwksEndpoint) -> dict[str, tuple[dict[str, Any], bool]]:
    """header → (its parameters, signed by the issuer rather than the attacker)."""
    real = stack.issuer.kid
    return {
        "jku-attacker-kid": ({"kid": "attacker", "jku": server.url}, False),
        "jku-issuer-kid": ({"kid": real, "jku": server.url}, False),
        "x5u-attacker": ({"kid": "attacker", "x5u": server.url}, False),
        "jwk-embedded": ({"jwk": ATTACKER_JWK}, False),
        "jwk-embedded-issuer-kid": ({"kid": real, "jwk": {**ATTACKER_JWK, "kid": real}}, False),
        "x5c-self-signed": ({"kid": real, "x5c": [_attacker_certificate()]}, False),
        "crit-exp": ({"kid": real, "crit": ["exp"]}, True),
        "crit-unknown": ({"kid": real, "crit": ["urn:example:must-understand"]}, True),
        "crit-empty": ({"kid": real, "crit": []}, True),
        "b64-false": ({"kid": real, "b64": False, "crit": ["b64"]}, True),
    }


HEADER_CASES = [
    "jku-attacker-kid",
    "jku-issuer-kid",
    "x5u-attacker",
    "jwk-embedded",
    "jwk-embedded-issuer-kid",
    "x5c-self-signed",
    "crit-exp",
    "crit-unknown",
    "crit-empty",
    "b64-false",
]


@pytest.mark.parametrize("case", HEADER_CASES)
def test_key_bearing_and_critical_headers_are_never_followed(
    stack: Stack, user: User, victim: User, key_server: JwksEndpoint, case: str
) -> None:
    """A token that brings its own key (RFC 7515 §4.1.2-4.1.6) is verified against the
    issuer's JWKS only, and the URL it names is never fetched; ``crit`` lists extensions
    edge-jwt does not implement, so the token is refused (RFC 7515 §4.1.11) even when the
    issuer signed it."""
    header, by_issuer = _header_cases(stack, key_server)[case]
    key = stack.issuer.private_pem if by_issuer else ATTACKER_PEM
    token = rs256(key, {"typ": "JWT", **header}, payload_of(user, sub=victim.id))
    hits = key_server.count()
    if header.get("kid") == stack.issuer.kid:
        refused_everywhere(stack, auth(token), victim)
    else:
        refused_unknown_key(stack, token, victim)
    assert key_server.count() == hits


@pytest.mark.parametrize("parameter", ["jku", "x5u"])
def test_a_key_url_on_an_issuer_token_is_ignored(
    stack: Stack, user: User, victim: User, key_server: JwksEndpoint, parameter: str
) -> None:
    """The issuer's own token with a key URL added: ignored, not followed."""
    hits = key_server.count()
    token = stack.issuer.mint(claims_for(user), **{parameter: key_server.url})
    accepted_as(stack, auth(token), user, victim)
    assert key_server.count() == hits


# --- signatures ---------------------------------------------------------------------------


SIGNATURES: dict[str, Callable[[str, str, str, str], str]] = {
    "empty": lambda h, p, s, other: f"{h}.{p}.",
    "stripped": lambda h, p, s, other: f"{h}.{p}",
    "double-dot": lambda h, p, s, other: f"{h}.{p}..",
    "truncated-1": lambda h, p, s, other: f"{h}.{p}.{s[:-1]}",
    "truncated-4": lambda h, p, s, other: f"{h}.{p}.{s[:-4]}",
    "truncated-half": lambda h, p, s, other: f"{h}.{p}.{s[: len(s) // 2]}",
    "zeros": lambda h, p, s, other: f"{h}.{p}.{b64url(bytes(256))}",
    "null-literal": lambda h, p, s, other: f"{h}.{p}.null",
    "padded": lambda h, p, s, other: f"{h}.{p}.{s}==",
    "extended": lambda h, p, s, other: f"{h}.{p}.{s}AAAA",
    "of-another-token": lambda h, p, s, other: f"{h}.{p}.{other}",
}


@pytest.mark.parametrize("shape", SIGNATURES)
def test_null_stripped_and_truncated_signatures(
    stack: Stack, user: User, victim: User, shape: str
) -> None:
    """The victim's claims under the issuer's header, with a signature that is not theirs."""
    head, _, signature = user.access_token.split(".")
    forged = payload_of(user, sub=victim.id, email=victim.email)
    other = stack.issuer.mint(claims_for(user)).split(".")[2]
    refused_everywhere(stack, auth(SIGNATURES[shape](head, forged, signature, other)), victim)


# --- weak HMAC secrets --------------------------------------------------------------------

WEAK_SECRETS = {
    "secret": b"secret",
    "empty": b"",
    "password": b"password",
    "changeme": b"changeme",
    "jwt-io-default": b"your-256-bit-secret",
    "service-name": b"auth-backend",
    "issuer": ISSUER.encode(),
    "django-secret-key": b"edge-jwt-e2e-only-secret-key-0123456789-abcdefghijklmnop",
}


@pytest.mark.parametrize("secret", WEAK_SECRETS)
@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_weak_hmac_secrets(stack: Stack, user: User, victim: User, secret: str, alg: str) -> None:
    """HS* is not an accepted algorithm at all, so no secret, guessed or leaked, signs."""
    for header in ({"typ": "JWT", "kid": stack.issuer.kid}, {"typ": "JWT"}):
        token = hs(alg, WEAK_SECRETS[secret], header, payload_of(user, sub=victim.id))
        refused_everywhere(stack, auth(token), victim)


# --- exp / nbf / iat ----------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


TIME_REFUSED: dict[str, Callable[[int], dict[str, Any]]] = {
    "expired-beyond-leeway": lambda n: {"iat": n - 600, "nbf": n - 600, "exp": n - LEEWAY - 5},
    "exp-zero": lambda n: {"exp": 0},
    "exp-negative": lambda n: {"exp": -1},
    "exp-missing": lambda n: {"exp": None},
    "iat-missing": lambda n: {"iat": None},
    "exp-far-future": lambda n: {"exp": n + 10**12},
    "exp-huge-float": lambda n: {"exp": 1e308},
    "exp-infinity": lambda n: {"exp": math.inf},
    "exp-nan": lambda n: {"exp": math.nan},
    "iat-nan": lambda n: {"iat": math.nan},
    "nbf-nan": lambda n: {"nbf": math.nan, "exp": n - LEEWAY - 5, "iat": n - 600},
    "nbf-beyond-leeway": lambda n: {"nbf": n + LEEWAY + 60},
    "iat-beyond-leeway": lambda n: {"iat": n + LEEWAY + 60, "nbf": n},
    "lifetime-over-max": lambda n: {"iat": n - 10, "exp": n - 10 + MAX_LIFETIME + 1},
    "iat-ancient": lambda n: {"iat": 0, "nbf": 0},
    "exp-huge-int": lambda n: {"exp": 10**400},
}

TIME_ACCEPTED: dict[str, Callable[[int], dict[str, Any]]] = {
    "expired-within-leeway": lambda n: {"iat": n - 600, "nbf": n - 600, "exp": n - 5},
    "nbf-within-leeway": lambda n: {"nbf": n + 5},
    "iat-within-leeway": lambda n: {"iat": n + 5, "nbf": n},
    "lifetime-exactly-max": lambda n: {"iat": n - 10, "exp": n - 10 + MAX_LIFETIME},
    "nbf-absent": lambda n: {"nbf": None},
    "float-times": lambda n: {"iat": n + 0.5, "nbf": n + 0.5, "exp": n + 600.5},
}


@pytest.mark.parametrize("case", TIME_REFUSED)
def test_time_claims_refused(stack: Stack, user: User, victim: User, case: str) -> None:
    """Signed by the issuer: the edge's own clock decides (30 s leeway, 900 s lifetime),
    and a time that is not a finite number is no time at all."""
    token = stack.issuer.mint(claims_for(user, **TIME_REFUSED[case](_now())))
    refused_everywhere(stack, auth(token), victim)


@pytest.mark.parametrize("case", TIME_ACCEPTED)
def test_time_claims_at_the_edges_accepted(
    stack: Stack, user: User, victim: User, case: str
) -> None:
    token = stack.issuer.mint(claims_for(user, **TIME_ACCEPTED[case](_now())))
    accepted_as(stack, auth(token), user, victim)


# --- iss / aud and claim types --------------------------------------------------------------

CLAIMS_REFUSED: dict[str, dict[str, Any]] = {
    "iss-trailing-slash": {"iss": ISSUER + "/"},
    "iss-upper-case": {"iss": ISSUER.upper()},
    "iss-http": {"iss": ISSUER.replace("https", "http")},
    "iss-suffix": {"iss": ISSUER + ".evil.example"},
    "iss-missing": {"iss": None},
    "aud-other": {"aud": "another-api"},
    "aud-upper-case": {"aud": AUDIENCE.upper()},
    "aud-padded": {"aud": AUDIENCE + " "},
    "iss-list": {"iss": [ISSUER]},
    "aud-missing": {"aud": None},
    "aud-empty-list": {"aud": []},
    "aud-list-other": {"aud": ["another-api"]},
    "aud-number": {"aud": 1},
    "aud-list-of-numbers": {"aud": [1, 2]},
    "aud-object": {"aud": {"marketplace-api": True}},
    "exp-string": {"exp": "9999999999"},
    "exp-bool": {"exp": True},
    "exp-list": {"exp": [9999999999]},
    "iat-string": {"iat": "0"},
    "nbf-string": {"nbf": "0"},
    "sub-number": {"sub": 1},
    "sub-list": {"sub": ["x"]},
    "sub-empty": {"sub": ""},
    "sub-crlf": {"sub": "x\r\nX-User-Roles: staff"},
    "sub-lone-surrogate": {"sub": "\ud800"},
    "email-list": {"email": ["a@example.com"]},
    "roles-string": {"roles": "staff"},
    "roles-object": {"roles": {"staff": True}},
    "roles-with-comma": {"roles": ["user,staff"]},
    "roles-number": {"roles": [1]},
    "scope-list": {"scope": ["profile", "seller"]},
    "jti-number": {"jti": 1},
    "jti-missing": {"jti": None},
    "token-use-refresh": {"token_use": "refresh"},
    "token-use-upper-case": {"token_use": "ACCESS"},
    "token-use-list": {"token_use": ["access"]},
    "token-use-missing": {"token_use": None},
}


@pytest.mark.parametrize("case", CLAIMS_REFUSED)
def test_wrong_issuer_audience_and_claim_types(
    stack: Stack, user: User, victim: User, case: str
) -> None:
    """Signed by the issuer; one claim wrong or of the wrong type."""
    token = rs256(
        stack.issuer.private_pem,
        {"typ": "JWT", "kid": stack.issuer.kid},
        payload_of(user, **CLAIMS_REFUSED[case]),
    )
    refused_everywhere(stack, auth(token), victim)


def test_audience_as_a_list_holding_ours_is_accepted(
    stack: Stack, user: User, victim: User
) -> None:
    """RFC 7519 §4.1.3: ``aud`` may be an array; ours among others is ours."""
    token = stack.issuer.mint(claims_for(user, aud=["another-api", AUDIENCE]))
    accepted_as(stack, auth(token), user, victim)


# --- payload shapes -------------------------------------------------------------------------


def _issuer_signed(stack: Stack, header: dict[str, Any], payload: bytes) -> str:
    return jwt.api_jws.encode(payload, stack.issuer.private_pem, algorithm="RS256", headers=header)


def test_huge_token_is_refused(stack: Stack, user: User, victim: User) -> None:
    """Over ``max_token_bytes`` (8 KiB): refused before any parsing."""
    token = stack.issuer.mint(claims_for(user, padding="x" * 9000))
    refused_everywhere(stack, auth(token), victim)


def test_large_token_under_the_bound_is_accepted(stack: Stack, user: User, victim: User) -> None:
    token = stack.issuer.mint(claims_for(user, padding="x" * 4000))
    accepted_as(stack, auth(token), user, victim)


@pytest.mark.parametrize("where", ["header-forged", "payload-forged", "payload-issuer-signed"])
def test_deeply_nested_json(stack: Stack, user: User, victim: User, where: str) -> None:
    """2,500 nested arrays: past Python's recursion limit, well under 8 KiB."""
    nested = "[" * 2500 + "]" * 2500
    claims = json.dumps(claims_for(user, sub=victim.id))
    deep_payload = (claims[:-1] + f', "deep": {nested}}}').encode()
    head, body, signature = user.access_token.split(".")
    if where == "header-forged":
        deep_head = f'{{"alg":"RS256","kid":"{stack.issuer.kid}","deep":{nested}}}'
        token = f"{b64url(deep_head.encode())}.{body}.{signature}"
    elif where == "payload-forged":
        token = f"{head}.{b64url(deep_payload)}.{signature}"
    else:
        token = _issuer_signed(stack, {"kid": stack.issuer.kid}, deep_payload)
    assert len(token) < 8192
    refused_everywhere(stack, auth(token), victim)


def test_duplicate_header_keys_forged(stack: Stack, user: User, victim: User) -> None:
    """``alg`` twice, ``none`` last: a parser taking the first would check RS256."""
    _, body, signature = user.access_token.split(".")
    for raw in (
        f'{{"alg":"RS256","kid":"{stack.issuer.kid}","alg":"none"}}',
        f'{{"alg":"none","kid":"{stack.issuer.kid}","alg":"HS256"}}',
    ):
        token = f"{b64url(raw.encode())}.{body}.{signature}"
        refused_everywhere(stack, auth(token), victim)


def test_duplicate_payload_keys_take_the_last_value_everywhere(
    stack: Stack, user: User, victim: User
) -> None:
    """RFC 7515 §5.2 allows the lexically last member; what matters is that the edge has
    one reading and forwards only that one: the upstream sees the last ``sub``/``roles``
    as the gateway's identity, never the first (the victim, staff)."""
    claims = json.dumps(claims_for(user))[:-1]
    raw = (
        f'{{"sub":"{victim.id}","email":"{victim.email}","roles":["user","staff"],'
        + claims[1:]
        + "}"
    ).encode()
    token = _issuer_signed(stack, {"kid": stack.issuer.kid, "typ": "JWT"}, raw)
    accepted_as(stack, auth(token), user, victim)


BAD_UTF8_HEADER = b64url(b'{"alg":"RS256\xff"}')
BAD_UTF8_PAYLOAD = b64url(b'{"sub":"\xff\xfe"}')
OVERLONG_HEADER = b64url(b'{"alg":"RS256\xc0\xa2}')
ARRAY_HEADER = b64url(b'["RS256"]')

BAD_ENCODINGS: dict[str, Callable[[str, str, str], str]] = {
    "standard-b64-alphabet": lambda h, p, s: f"{h}.{p.replace('-', '+').replace('_', '/')}+/.{s}",
    "padding": lambda h, p, s: f"{h}==.{p}.{s}",
    "non-b64-char": lambda h, p, s: f"{h}.{p}*.{s}",
    "four-segments": lambda h, p, s: f"{h}.{p}.{s}.{s}",
    "one-segment": lambda h, p, s: f"{h}{p}{s}",
    "header-invalid-utf8": lambda h, p, s: f"{BAD_UTF8_HEADER}.{p}.{s}",
    "payload-invalid-utf8": lambda h, p, s: f"{h}.{BAD_UTF8_PAYLOAD}.{s}",
    "header-not-json": lambda h, p, s: f"{b64url(b'RS256')}.{p}.{s}",
    "header-array": lambda h, p, s: f"{ARRAY_HEADER}.{p}.{s}",
    "payload-not-json": lambda h, p, s: f"{h}.{b64url(b'not json')}.{s}",
    "header-empty": lambda h, p, s: f".{p}.{s}",
    "payload-empty": lambda h, p, s: f"{h}..{s}",
    "overlong-utf8-quote": lambda h, p, s: f"{OVERLONG_HEADER}.{p}.{s}",
}


@pytest.mark.parametrize("case", BAD_ENCODINGS)
def test_invalid_base64_and_utf8(stack: Stack, user: User, victim: User, case: str) -> None:
    head, body, signature = user.access_token.split(".")
    refused_everywhere(stack, auth(BAD_ENCODINGS[case](head, body, signature)), victim)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xfe{}", id="invalid-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"sub"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"1", id="number"),
    ],
)
def test_issuer_signed_payload_that_is_not_a_claims_object(
    stack: Stack, user: User, victim: User, payload: bytes
) -> None:
    token = _issuer_signed(stack, {"kid": stack.issuer.kid}, payload)
    refused_everywhere(stack, auth(token), victim)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"Bearer \xff\xfe.\xfd.\xfc", id="invalid-utf8-token"),
        pytest.param(b"Bearer caf\xe9.e30.c2ln", id="latin1-token"),
        pytest.param(b"B\xe9arer e30.e30.c2ln", id="latin1-scheme"),
        pytest.param("Bearer e30.e30.c2ln\u00a0".encode(), id="utf8-nbsp-suffix"),
    ],
)
def test_authorization_header_that_is_not_ascii(
    stack: Stack, user: User, victim: User, value: bytes
) -> None:
    """Header bytes outside ASCII (RFC 9110 §5.5 obs-text) are no token; the request is
    refused as malformed or token-less, never passed on with the spoofed identity."""
    since = len(stack.upstream.requests)
    for path in ("/api/auth/profile", "/sec-rec/probe"):
        response = stack.client.get(
            path,
            headers=[
                (b"Authorization", value),
                *((k.encode(), v.encode()) for k, v in spoofed(victim)),
            ],
        )
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith('Bearer realm="api"')
    assert assert_upstream_identity(stack, since, None) == 0
