"""Verification keys: inline JWKS, PEM public keys, and the keys of a fetched JWKS.

Keys are turned into ``cryptography`` objects when they arrive, never per request, and
carry the algorithms they may verify (from their ``alg``, else from ``kty``/``crv``),
which is how a token's ``alg`` is *pinned* to the key (:mod:`.verify`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from edge_plugins.certificates import record_certificate

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048

# Algorithms each key type can verify when the JWK does not pin one with "alg".
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_ALGORITHMS = {"Ed25519": "EdDSA"}
_OCT_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# RFC 7638 §3.2: the required members hashed for each key type.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}
# Private members (RFC 7518 §6.2.2, §6.3.2, RFC 8037): a published JWK must not carry them.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


class InvalidKey(ValueError):
    """A JWK or PEM that cannot serve as a verification key (skipped, or refused in config)."""


@dataclass(frozen=True)
class VerificationKey:
    """A parsed public key (or inline HMAC secret) and the algorithms it may verify.

    ``kid`` is the declared ``kid`` or, for a PEM key, its RFC 7638 thumbprint (the
    backend names its keys that way, so its tokens match a PEM copy of its key).
    ``matches_kidless`` marks keys that declared no ``kid``: only they may verify a token
    without one.
    """

    kid: str | None
    algorithms: frozenset[str]
    key: Any
    kty: str
    matches_kidless: bool


class KeySource(Protocol):
    """Where :func:`edge_plugins.jwt.verify.verify_token` gets its keys."""

    def keys_for(self, kid: str | None) -> Sequence[VerificationKey]:
        """Candidate keys for a token's ``kid``; empty if none; raises KeysUnavailable."""
        ...


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding)."""
    try:
        members = _THUMBPRINT_MEMBERS[jwk["kty"]]
        canonical = json.dumps(
            {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
        )
    except KeyError as exc:
        raise InvalidKey(f"JWK lacks {exc.args[0]!r}") from None
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _algorithms_for(jwk: Mapping[str, Any]) -> frozenset[str]:
    kty = jwk.get("kty")
    if kty == "RSA":
        compatible = _RSA_ALGORITHMS
    elif kty == "EC":
        alg = _EC_ALGORITHMS.get(str(jwk.get("crv")))
        compatible = frozenset({alg}) if alg else frozenset()
    elif kty == "OKP":
        alg = _OKP_ALGORITHMS.get(str(jwk.get("crv")))
        compatible = frozenset({alg}) if alg else frozenset()
    elif kty == "oct":
        compatible = _OCT_ALGORITHMS
    else:
        raise InvalidKey(f"unsupported key type {kty!r}")
    if not compatible:
        raise InvalidKey(f"unsupported curve {jwk.get('crv')!r}")
    declared = jwk.get("alg")
    if declared is None:
        return compatible
    if declared not in compatible:
        raise InvalidKey(f"alg {declared!r} does not fit a {kty} key")
    return frozenset({declared})


def key_from_jwk(jwk: Mapping[str, Any], *, allow_secret: bool = False) -> VerificationKey:
    """Parse one JWK; raises :class:`InvalidKey` for anything unusable or unsafe."""
    if not isinstance(jwk, Mapping):
        raise InvalidKey("a JWK must be an object")
    if jwk.get("use") not in (None, "sig"):
        raise InvalidKey("not a signature key (use)")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise InvalidKey("not a verification key (key_ops)")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidKey("JWK carries private key material")
    if jwk.get("kty") == "oct" and not allow_secret:
        raise InvalidKey("shared secrets are accepted only inline")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise InvalidKey("kid must be a non-empty string")
    algorithms = _algorithms_for(jwk)
    try:
        parsed = jwt.PyJWK(dict(jwk), algorithm=min(algorithms))
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise InvalidKey(f"unparsable {jwk.get('kty')} JWK: {type(exc).__name__}") from None
    _check_strength(parsed.key)
    return VerificationKey(
        kid=kid,
        algorithms=algorithms,
        key=parsed.key,
        kty=str(jwk["kty"]),
        matches_kidless=kid is None,
    )


def key_from_pem(pem: str) -> VerificationKey:
    """Parse a PEM public key or certificate; its ``kid`` is the RFC 7638 thumbprint."""
    data = pem.strip().encode("ascii", "replace")
    public: PublicKeyTypes
    try:
        if b"CERTIFICATE" in data.split(b"\n", 1)[0]:
            certificate = x509.load_pem_x509_certificate(data)
            public = certificate.public_key()
            record_certificate("edge-jwt public_keys_pem", certificate)
        else:
            public = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidKey("not a PEM public key or certificate") from None
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise InvalidKey(f"unsupported public key type {type(public).__name__}")
    _check_strength(public)
    return VerificationKey(
        kid=jwk_thumbprint(jwk),
        algorithms=_algorithms_for(jwk),
        key=public,
        kty=jwk["kty"],
        matches_kidless=True,
    )


def _check_strength(key: Any) -> None:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidKey(f"RSA key shorter than {MIN_RSA_BITS} bits")


def keys_from_jwks(
    document: Any, *, allow_secret: bool = False, strict: bool = False
) -> list[VerificationKey]:
    """The usable keys of a JWKS document; bad keys are skipped (or raise when ``strict``)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise InvalidKey("a JWKS must be an object with a 'keys' array")
    keys = []
    for jwk in document["keys"]:
        try:
            keys.append(key_from_jwk(jwk, allow_secret=allow_secret))
        except InvalidKey as exc:
            if strict:
                raise
            log.warning(
                "JWKS key skipped (kid %r): %s",
                jwk.get("kid") if isinstance(jwk, Mapping) else None,
                exc,
            )
    return keys


def static_keys(
    jwks: Mapping[str, Any] | None, pems: Iterable[str] = ()
) -> tuple[VerificationKey, ...]:
    """Inline keys from the configuration, strictly parsed (a bad key is a config error)."""
    keys: list[VerificationKey] = []
    if jwks is not None:
        keys.extend(keys_from_jwks(jwks, allow_secret=True, strict=True))
    keys.extend(key_from_pem(pem) for pem in pems)
    return tuple(keys)
