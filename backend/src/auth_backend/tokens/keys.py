"""Access-token signing keys: generation, encryption at rest, rotation and the process cache.

* Private keys are stored as Fernet tokens under a key derived with HKDF-SHA256 from
  ``SECRET_KEY``; keys encrypted under one of ``SECRET_KEY_FALLBACKS`` still decrypt, so the
  Django secret can be rotated the usual way.
* ``kid`` is the RFC 7638 JWK thumbprint of the public key.
* Each process parses keys once and keeps them; every use compares the cheap
  ``(kid, state)`` fingerprint of the published keys with the cached one and reloads after a
  rotation (by this process, another process or the management command).
* If no current key exists on first use, one is generated and logged (local development
  convenience; production runs ``manage.py rotate_signing_key`` at deploy time).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from auth_backend.tokens.models import SigningKey, SigningKeyState

log = logging.getLogger(__name__)

RSA_KEY_BITS = 2048
SUPPORTED_ALGORITHMS = ("RS256", "ES256")
_HKDF_INFO = b"auth_backend.tokens signing-key encryption v1"
# Members of a JWK that RFC 7638 hashes, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
# The published keys (JWKS) and the only ones verification accepts.
_LIVE_STATES = (SigningKeyState.CURRENT, SigningKeyState.PREVIOUS)


class SigningKeyUnavailable(RuntimeError):
    """A stored private key cannot be decrypted (``SECRET_KEY`` changed without fallback)."""


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    algorithm: str
    state: str
    public_jwk: dict[str, Any]
    public_key: Any
    private_key: Any | None  # only the current key's is parsed


# --- encryption at rest ----------------------------------------------------------------------


def _fernet_for(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _cipher() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(secret) for secret in secrets])


def encrypt_private_key(pem: bytes) -> str:
    return _cipher().encrypt(pem).decode("ascii")


def decrypt_private_key(token: str) -> bytes:
    try:
        return _cipher().decrypt(token.encode("ascii"))
    except InvalidToken:
        raise SigningKeyUnavailable(
            "A signing key cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS; "
            "restore the old secret as a fallback or rotate the signing key."
        ) from None


# --- generation ------------------------------------------------------------------------------


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url without padding)."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _configured_algorithm() -> str:
    algorithm = settings.ACCESS_TOKEN_ALGORITHM
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ImproperlyConfigured(
            f"ACCESS_TOKEN_ALGORITHM must be one of {', '.join(SUPPORTED_ALGORITHMS)}."
        )
    return algorithm


def _generate(algorithm: str) -> tuple[bytes, dict[str, Any]]:
    """A new private key (PKCS#8 PEM) and its public JWK with ``kid``, ``alg``, ``use``."""
    if algorithm == "RS256":
        private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    public.update(kid=jwk_thumbprint(public), alg=algorithm, use="sig")
    return pem, public


def _new_key_row(algorithm: str) -> SigningKey:
    pem, jwk = _generate(algorithm)
    return SigningKey(
        kid=jwk["kid"],
        algorithm=algorithm,
        private_key_encrypted=encrypt_private_key(pem),
        public_jwk=jwk,
        state=SigningKeyState.CURRENT,
    )


def rotate_signing_key() -> SigningKey:
    """Make a new current key: current → previous, previous → retired (private key wiped).

    Runs in one transaction, holding a lock on the live keys so concurrent rotations
    serialize; the partial unique constraint guarantees one current and one previous key.
    """
    algorithm = _configured_algorithm()
    new_key = _new_key_row(algorithm)  # slow (RSA generation): outside the transaction
    with transaction.atomic():
        live = list(SigningKey.objects.select_for_update().filter(state__in=_LIVE_STATES))
        now = timezone.now()
        for key in live:
            if key.state == SigningKeyState.PREVIOUS:
                key.state = SigningKeyState.RETIRED
                key.private_key_encrypted = ""
                key.retired_at = now
                key.save(update_fields=["state", "private_key_encrypted", "retired_at"])
        for key in live:
            if key.state == SigningKeyState.CURRENT:
                key.state = SigningKeyState.PREVIOUS
                key.save(update_fields=["state"])
        new_key.created_at = now
        new_key.save()
    log.info("signing key rotated", extra={"kid": new_key.kid, "algorithm": algorithm})
    signing_keys.invalidate()
    return new_key


def _ensure_current_key() -> None:
    """Create a current key when there is none (first use). Safe against concurrent callers."""
    if SigningKey.objects.filter(state=SigningKeyState.CURRENT).exists():
        return
    key = _new_key_row(_configured_algorithm())
    try:
        with transaction.atomic():
            key.save()
    except IntegrityError:
        return  # another process created it first; use theirs
    log.warning(
        "no access-token signing key existed; generated one "
        "(run `manage.py rotate_signing_key` to manage keys explicitly)",
        extra={"kid": key.kid, "algorithm": key.algorithm},
    )


# --- process cache ---------------------------------------------------------------------------


def _fingerprint() -> tuple[tuple[str, str], ...]:
    return tuple(
        SigningKey.objects.filter(state__in=_LIVE_STATES)
        .order_by("kid")
        .values_list("kid", "state")
    )


def _parse_public(row: SigningKey) -> Any:
    if row.public_jwk["kty"] == "RSA":
        return RSAAlgorithm.from_jwk(row.public_jwk)
    return ECAlgorithm.from_jwk(row.public_jwk)


def _load_private_key(row: SigningKey) -> Any | None:
    """The parsed private key, or ``None`` (logged): verification and the JWKS keep working."""
    try:
        return serialization.load_pem_private_key(
            decrypt_private_key(row.private_key_encrypted), password=None
        )
    except (SigningKeyUnavailable, ValueError) as exc:
        log.error(
            "current signing key unusable; no access tokens can be issued",
            extra={"kid": row.kid, "error": str(exc)},
        )
        return None


class _SigningKeys:
    """The published keys, parsed once per process and reloaded when they change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fingerprint: tuple[tuple[str, str], ...] | None = None
        self._keys: dict[str, LoadedKey] = {}
        self._current: LoadedKey | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._fingerprint = None
            self._keys = {}
            self._current = None

    def current(self) -> LoadedKey:
        """The key that signs new tokens (created on first use if there is none)."""
        current = self._current_row()
        if current is None or current.private_key is None:
            raise SigningKeyUnavailable(
                "The current signing key is missing or cannot be decrypted; see the logs."
            )
        return current

    def published(self) -> list[LoadedKey]:
        """Current then previous: what the JWKS lists and what verification accepts."""
        self._current_row()
        return sorted(self._keys.values(), key=lambda k: k.state != SigningKeyState.CURRENT)

    def _current_row(self) -> LoadedKey | None:
        self._sync()
        if self._current is None:
            _ensure_current_key()
            self._sync()
        return self._current

    def verification_key(self, kid: str) -> LoadedKey | None:
        """The published key with this ``kid``; retired and unknown keys give ``None``."""
        self._sync()
        return self._keys.get(kid)

    def _sync(self) -> None:
        fingerprint = _fingerprint()
        if fingerprint == self._fingerprint:
            return
        with self._lock:
            if fingerprint == self._fingerprint:
                return
            rows = SigningKey.objects.filter(state__in=_LIVE_STATES)
            keys: dict[str, LoadedKey] = {}
            current: LoadedKey | None = None
            for row in rows:
                private_key = None
                if row.state == SigningKeyState.CURRENT:
                    private_key = _load_private_key(row)
                loaded = LoadedKey(
                    kid=row.kid,
                    algorithm=row.algorithm,
                    state=row.state,
                    public_jwk=dict(row.public_jwk),
                    public_key=_parse_public(row),
                    private_key=private_key,
                )
                keys[row.kid] = loaded
                if row.state == SigningKeyState.CURRENT:
                    current = loaded
            # A consistent snapshot; its fingerprint comes from the rows actually loaded (a
            # rotation between the two queries shows up as a mismatch on the next call).
            self._keys = keys
            self._current = current
            self._fingerprint = tuple(sorted((k.kid, k.state) for k in keys.values()))


signing_keys = _SigningKeys()


def jwks_document() -> dict[str, list[dict[str, Any]]]:
    """``{"keys": [current, previous]}``: public JWKs only."""
    return {"keys": [dict(key.public_jwk) for key in signing_keys.published()]}
