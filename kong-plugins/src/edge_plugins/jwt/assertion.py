"""The gateway's identity assertion: a short-lived JWS the backend trusts
(docs/identity-assertion.md).

Plain ``X-User-*`` headers prove nothing: anything that reaches the backend without passing
through edge-jwt (Kong fails open when a plugin server is down) could carry them. So the
edge signs what it decided — ``iss`` (the gateway), ``aud`` (the upstream service), ``sub``,
``email``, ``roles``, ``scope``, the user token's ``jti``, ``iat`` and ``exp`` ≤ 60 s later,
never beyond the user token's own ``exp`` — with a private key only the gateway holds.
The backend verifies it against :meth:`AssertionSigner.public_jwks` (its ``GATEWAY_JWKS``)
exactly like the ``edge-identity`` package (``edge_identity.verifier``) does.

A signature alone would let anyone who sees gateway→upstream traffic replay the header
while it lives, on any endpoint. So each assertion is bound to the one request it was
minted for (docs/identity-assertion.md): ``assertion_id``, 128 random bits of its own (the
upstream accepts each id once), and ``req_method`` / ``req_path``, the method and the path
the upstream receives — the idea of DPoP's ``jti``/``htm``/``htu`` (RFC 9449 §4.2), under
names of our own because this is not a DPoP proof. The user token's ``jti`` keeps its claim.

Ed25519 (``EdDSA``) by default: small signatures, fast to sign, no parameter choices to get
wrong; EC P-256 (``ES256``) is accepted for environments that need NIST curves. The ``kid``
is the key's RFC 7638 thumbprint, so rotating the key changes it automatically.

Per-request binding makes every assertion unique, so none is cached: each accepted request
costs one signature. It is a compact JWS (RFC 7515 §3.1, §7.1) built here rather than by
``jwt.encode``: the protected header is encoded once per key, and a request pays the JSON of
its claims, base64url and the Ed25519 signature (about 35 µs) only, without PyJWT's
per-call key checks and header merging — each layer is paid again, cold, by a plugin server
that idled between requests (docs/plugin-runtime.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from edge_plugins.jwt.errors import SigningKeyError
from edge_plugins.jwt.keys import jwk_thumbprint

log = logging.getLogger(__name__)

MAX_TTL_SECONDS = 60
# The request-binding claims (docs/identity-assertion.md); the user token's id stays "jti".
ASSERTION_ID_CLAIM = "assertion_id"
METHOD_CLAIM = "req_method"
PATH_CLAIM = "req_path"
ASSERTION_ID_BYTES = 16  # 128 bits: collisions among live assertions are out of reach
SIGNING_ALGORITHMS = ("EdDSA", "ES256")
_PUBLIC_MEMBERS = {"OKP": ("kty", "crv", "x"), "EC": ("kty", "crv", "x", "y")}


class InvalidRequestTarget(ValueError):
    """The request an assertion would be bound to has no usable method or path."""


@dataclass(frozen=True)
class RequestBinding:
    """The request an assertion is minted for: its method and the path the upstream gets."""

    method: str
    path: str

    def __post_init__(self) -> None:
        # Built from PDK calls, which give ``nil`` (None) for a missing value whatever the
        # annotations say: a missing value must not be signed as if it were a request.
        method: object = self.method
        path: object = self.path
        if not isinstance(method, str) or not method:
            raise InvalidRequestTarget(f"no request method: {method!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidRequestTarget(f"no upstream path: {path!r}")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _load_private_key(pem: bytes) -> tuple[Any, str, dict[str, Any]]:
    """The private key, its JWS algorithm and its public JWK (with kid, alg, use)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"not an unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm, jwk = "EdDSA", OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm, jwk = "ES256", ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        raise SigningKeyError("the assertion key must be Ed25519 or EC P-256")
    public = {name: jwk[name] for name in _PUBLIC_MEMBERS[jwk["kty"]]}
    public.update(kid=jwk_thumbprint(public), alg=algorithm, use="sig")
    return key, algorithm, public


class AssertionSigner:
    """Signs identity assertions with the key in ``key_file`` (loaded once, lazily)."""

    def __init__(
        self,
        key_file: str,
        *,
        issuer: str = "kong-edge",
        ttl_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        self.key_file = key_file
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._key: Any = None
        self._algorithm = ""
        self._public_jwk: dict[str, Any] = {}
        self._header_segment = b""  # base64url of the protected header, per key

    def load(self) -> None:
        """Read and parse the key file (once); raises :class:`SigningKeyError`."""
        if self._key is not None:
            return
        with self._lock:
            if self._key is not None:
                return
            path = Path(self.key_file)
            try:
                pem = path.read_bytes()
                mode = path.stat().st_mode
            except OSError as exc:
                raise SigningKeyError(
                    f"cannot read assertion signing key {self.key_file}: {type(exc).__name__}"
                ) from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning(
                    "assertion signing key %s is accessible by group/others; chmod 600 it",
                    self.key_file,
                )
            key, algorithm, public = _load_private_key(pem)
            self._algorithm, self._public_jwk = algorithm, public
            header = {"alg": algorithm, "kid": public["kid"], "typ": "JWT"}
            self._header_segment = _b64url(json.dumps(header, separators=(",", ":")).encode())
            self._key = key  # last: load() returns early once it is set
            log.info("assertion signing key loaded: %s kid %s", algorithm, public["kid"])

    @property
    def kid(self) -> str:
        self.load()
        return str(self._public_jwk["kid"])

    @property
    def algorithm(self) -> str:
        self.load()
        return self._algorithm

    def public_jwks(self) -> dict[str, Any]:
        """The public JWKS the backend configures as ``GATEWAY_JWKS``."""
        self.load()
        return {"keys": [dict(self._public_jwk)]}

    def sign(
        self,
        claims: Mapping[str, Any],
        audience: str,
        *,
        request: RequestBinding,
        now: float | None = None,
    ) -> str:
        """The assertion for a verified user token's ``claims``, addressed to ``audience``
        and bound to ``request`` (a fresh ``assertion_id`` every call)."""
        self.load()
        now = self._clock() if now is None else now
        payload = self._payload(claims, audience, request, now)
        body = json.dumps(payload, separators=(",", ":")).encode()
        signing_input = self._header_segment + b"." + _b64url(body)
        return (signing_input + b"." + _b64url(self._signature(signing_input))).decode("ascii")

    def _signature(self, signing_input: bytes) -> bytes:
        if self._algorithm == "EdDSA":
            return bytes(self._key.sign(signing_input))  # RFC 8037 §3.1
        # ES256: R || S, each 32 bytes big-endian, not DER (RFC 7518 §3.4).
        r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def _payload(
        self, claims: Mapping[str, Any], audience: str, request: RequestBinding, now: float
    ) -> dict[str, Any]:
        iat = int(now)
        token_exp = int(claims["exp"])
        # Never outlive the user token; but a token accepted within the leeway after its
        # exp still gets an assertion that is not born expired.
        exp = max(min(iat + self.ttl_seconds, token_exp), iat + 1)
        payload = {
            "iss": self.issuer,
            "aud": audience,
            "sub": str(claims["sub"]),
            "email": str(claims.get("email") or ""),
            "roles": list(claims.get("roles") or []),
            "scope": " ".join(str(claims.get("scope") or "").split()),
            "jti": str(claims["jti"]),
            ASSERTION_ID_CLAIM: secrets.token_urlsafe(ASSERTION_ID_BYTES),
            METHOD_CLAIM: request.method,
            PATH_CLAIM: request.path,
            "iat": iat,
            "exp": exp,
        }
        return payload


# --- key generation -----------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte (then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_public(path: Path, jwks: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)


def generate_signing_key(
    private_path: str | os.PathLike[str],
    public_jwks_path: str | os.PathLike[str],
    *,
    algorithm: str = "EdDSA",
    overwrite: bool = False,
) -> str:
    """Create an assertion key pair: private PEM (0600) + public JWKS; returns the ``kid``.

    Refuses to replace an existing private key unless ``overwrite``: replacing it silently
    would log every backend out of trusting the gateway.
    """
    private = Path(private_path)
    if private.exists() and not overwrite:
        raise FileExistsError(f"{private} exists (pass overwrite=True to replace it)")
    if algorithm == "EdDSA":
        key: Any = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _, _, public = _load_private_key(pem)
    _write_private(private, pem)
    _write_public(Path(public_jwks_path), {"keys": [public]})
    return str(public["kid"])


def ensure_signing_key(
    private_path: str | os.PathLike[str],
    public_jwks_path: str | os.PathLike[str],
    *,
    algorithm: str = "EdDSA",
) -> str:
    """Generate the key pair if the private key is missing; always (re)write the JWKS."""
    private = Path(private_path)
    if not private.exists():
        return generate_signing_key(private, public_jwks_path, algorithm=algorithm)
    _, _, public = _load_private_key(private.read_bytes())
    _write_public(Path(public_jwks_path), {"keys": [public]})
    return str(public["kid"])


def main(argv: list[str] | None = None) -> int:
    """``python -m edge_plugins.jwt.assertion PRIVATE_PEM PUBLIC_JWKS [--alg ES256]``."""
    parser = argparse.ArgumentParser(description="Create the gateway's assertion key pair.")
    parser.add_argument("private_pem")
    parser.add_argument("public_jwks")
    parser.add_argument("--alg", default="EdDSA", choices=SIGNING_ALGORITHMS)
    parser.add_argument("--force", action="store_true", help="replace an existing key")
    parser.add_argument(
        "--keep", action="store_true", help="keep an existing key; only rewrite its public JWKS"
    )
    args = parser.parse_args(argv)
    try:
        if args.keep:
            kid = ensure_signing_key(args.private_pem, args.public_jwks, algorithm=args.alg)
        else:
            kid = generate_signing_key(
                args.private_pem, args.public_jwks, algorithm=args.alg, overwrite=args.force
            )
    except (FileExistsError, SigningKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(kid)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
