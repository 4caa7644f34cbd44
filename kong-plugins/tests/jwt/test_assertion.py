"""The identity assertion: claims the backend accepts, caching, key files."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge_plugins.jwt.assertion import (
    AssertionSigner,
    InvalidRequestTarget,
    RequestBinding,
    ensure_signing_key,
    generate_signing_key,
    main,
)
from edge_plugins.jwt.errors import SigningKeyError
from edge_plugins.jwt.keys import jwk_thumbprint
from tests.support.edge_jwt import GATEWAY_ISSUER, SERVICE, access_claims, verify_assertion

PROFILE = RequestBinding("GET", "/api/auth/profile")


def _public(gateway_key: tuple[Path, Path]) -> dict:
    return json.loads(gateway_key[1].read_text())


def test_assertion_verifies_like_the_backend_does(
    signer: AssertionSigner, gateway_key: tuple[Path, Path]
) -> None:
    now = time.time()
    user = access_claims(
        iat=int(now),
        nbf=int(now),
        exp=int(now) + 900,
        roles=["user", "seller"],
        scope="profile seller",
    )
    token = signer.sign(user, SERVICE, request=PROFILE)
    claims = verify_assertion(token, _public(gateway_key), request=("GET", "/api/auth/profile"))
    assert claims is not None
    assert claims["iss"] == GATEWAY_ISSUER and claims["aud"] == SERVICE
    assert (claims["sub"], claims["email"], claims["roles"], claims["scope"], claims["jti"]) == (
        user["sub"],
        user["email"],
        ["user", "seller"],
        "profile seller",
        user["jti"],
    )
    assert claims["exp"] - claims["iat"] == 30
    assert (claims["req_method"], claims["req_path"]) == ("GET", "/api/auth/profile")
    assert claims["assertion_id"] != claims["jti"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == signer.kid


def test_another_audience_or_key_is_anonymous(
    signer: AssertionSigner, gateway_key: tuple[Path, Path], tmp_path: Path
) -> None:
    now = time.time()
    user = access_claims(iat=int(now), exp=int(now) + 900)
    assert (
        verify_assertion(signer.sign(user, "billing", request=PROFILE), _public(gateway_key))
        is None
    )
    other_private, other_public = tmp_path / "k.pem", tmp_path / "k.json"
    generate_signing_key(other_private, other_public)
    stranger = AssertionSigner(str(other_private))
    assert (
        verify_assertion(stranger.sign(user, SERVICE, request=PROFILE), _public(gateway_key))
        is None
    )


def test_public_jwks_is_the_thumbprinted_public_key(
    signer: AssertionSigner, gateway_key: tuple[Path, Path]
) -> None:
    jwks = signer.public_jwks()
    assert jwks == _public(gateway_key)
    (jwk,) = jwks["keys"]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert jwk["kid"] == jwk_thumbprint(jwk) == signer.kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")


def test_exp_never_outlives_the_user_token(signer: AssertionSigner) -> None:
    now = 1_800_000_000.0
    short = access_claims(exp=int(now) + 10)
    claims = jwt.decode(
        signer.sign(short, SERVICE, request=PROFILE, now=now), options={"verify_signature": False}
    )
    assert claims["iat"] == int(now) and claims["exp"] == int(now) + 10
    # Accepted within the leeway after exp: still not born expired.
    late = access_claims(exp=int(now) - 5)
    claims = jwt.decode(
        signer.sign(late, SERVICE, request=PROFILE, now=now), options={"verify_signature": False}
    )
    assert claims["exp"] == int(now) + 1


def test_every_assertion_is_fresh_and_bound_to_its_request(
    signer: AssertionSigner, gateway_key: tuple[Path, Path]
) -> None:
    """A captured assertion must not be replayable (docs/identity-assertion.md): each one
    has an id of its own and names its request, so none is reused for the same token."""
    now = time.time()
    user = access_claims(iat=int(now), exp=int(now) + 900)
    first = signer.sign(user, SERVICE, request=PROFILE, now=now)
    again = signer.sign(user, SERVICE, request=PROFILE, now=now)
    patch = signer.sign(
        user, SERVICE, request=RequestBinding("PATCH", "/api/auth/profile/"), now=now
    )
    assert len({first, again, patch}) == 3
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (first, again, patch)]
    assert len({c["assertion_id"] for c in claims}) == 3
    assert all(len(c["assertion_id"]) >= 22 for c in claims)  # 128 bits, base64url
    assert {c["jti"] for c in claims} == {user["jti"]}  # the user token's id, unchanged
    assert (claims[2]["req_method"], claims[2]["req_path"]) == ("PATCH", "/api/auth/profile/")
    public = _public(gateway_key)
    assert verify_assertion(patch, public, request=("PATCH", "/api/auth/profile/")) is not None
    assert verify_assertion(patch, public, request=("GET", "/api/auth/profile/")) is None
    assert verify_assertion(first, public, request=("GET", "/api/auth/other")) is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        (None, "/api/auth/profile"),
        ("", "/api/auth/profile"),
        ("GET", None),
        ("GET", ""),
        ("GET", "api/auth/profile"),
    ],
)
def test_a_request_without_method_or_path_is_never_signed(method: object, path: object) -> None:
    """A PDK nil (an nginx variable Kong does not have) must not become a signed claim."""
    with pytest.raises(InvalidRequestTarget):
        RequestBinding(method, path)  # type: ignore[arg-type]


def test_es256_keys_are_accepted(tmp_path: Path) -> None:
    private, public = tmp_path / "es.pem", tmp_path / "es.json"
    kid = generate_signing_key(private, public, algorithm="ES256")
    signer = AssertionSigner(str(private))
    assert signer.algorithm == "ES256" and signer.kid == kid
    now = time.time()
    token = signer.sign(access_claims(iat=int(now), exp=int(now) + 900), SERVICE, request=PROFILE)
    assert verify_assertion(token, json.loads(public.read_text())) is not None


def test_unusable_key_files(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read"):
        AssertionSigner(str(tmp_path / "missing.pem")).load()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(SigningKeyError, match="PEM"):
        AssertionSigner(str(garbage)).load()
    rsa_file = tmp_path / "rsa.pem"
    rsa_file.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="Ed25519 or EC P-256"):
        AssertionSigner(str(rsa_file)).load()


def test_ttl_is_bounded_to_60_seconds(key_file: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        AssertionSigner(str(key_file), ttl_seconds=61)


def test_generate_signing_key_writes_0600_pem_and_public_jwks(tmp_path: Path) -> None:
    private, public = tmp_path / "keys" / "assertion.pem", tmp_path / "keys" / "jwks.json"
    kid = generate_signing_key(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    document = json.loads(public.read_text())
    assert document["keys"][0]["kid"] == kid and "d" not in document["keys"][0]
    with pytest.raises(FileExistsError):
        generate_signing_key(private, public)
    assert ensure_signing_key(private, public) == kid, "an existing key is kept"
    assert generate_signing_key(private, public, overwrite=True) != kid


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private, public = tmp_path / "a.pem", tmp_path / "a.json"
    assert main([str(private), str(public)]) == 0
    kid = capsys.readouterr().out.strip()
    assert json.loads(public.read_text())["keys"][0]["kid"] == kid
    assert main([str(private), str(public)]) == 1
    assert main([str(private), str(public), "--keep"]) == 0
    assert capsys.readouterr().out.strip() == kid
