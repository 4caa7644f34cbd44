"""GatewayKeys: the JWKS from a file, re-read on rotation without hammering the source."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge_identity_support import write_jwks

from edge_identity.keys import JWKS_TTL_SECONDS, UNKNOWN_KID_REFRESH_SECONDS, GatewayKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotated_key_is_found_after_the_cool_down(tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", kid="old")
    clock = Clock()
    keys = GatewayKeys(str(path), clock=clock)
    assert keys.key_for("old") is not None
    write_jwks(path, Ed25519PrivateKey.generate(), kid="new")
    clock.now += 1
    assert keys.key_for("new") is None, "an unknown kid re-reads at most every 30 s"
    clock.now += UNKNOWN_KID_REFRESH_SECONDS
    assert keys.key_for("new") is not None
    assert keys.key_for("old") is None


def test_the_keys_are_re_read_after_their_ttl(tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", kid="k1")
    clock = Clock()
    keys = GatewayKeys(str(path), clock=clock)
    assert keys.key_for("k1") is not None
    path.unlink()
    clock.now += JWKS_TTL_SECONDS + 1
    assert keys.key_for("k1") is not None, "a failed read keeps the keys already loaded"


def test_a_callable_source_is_read_on_each_lookup(tmp_path: Path) -> None:
    first = write_jwks(tmp_path / "a.json", kid="a")
    second = write_jwks(tmp_path / "b.json", Ed25519PrivateKey.generate(), kid="b")
    source = [str(first)]
    keys = GatewayKeys(lambda: source[0])
    assert keys.key_for("a") is not None
    source[0] = str(second)
    assert keys.key_for("b") is not None and keys.key_for("a") is None
