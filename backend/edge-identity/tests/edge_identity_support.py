"""Assertions as the gateway signs them, and a Redis stand-in, for edge-identity's tests.

Not a package (no ``__init__.py``): pytest puts this directory on ``sys.path``, and the
module name is unique in the repository's test run.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

KID = "gw-1"
AUDIENCE = "orders"
KEY = Ed25519PrivateKey.generate()


def write_jwks(path: Path, key: Ed25519PrivateKey = KEY, kid: str = KID) -> Path:
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="EdDSA")
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def mint(
    *,
    method: str = "GET",
    path: str = "/orders/1",
    key: Ed25519PrivateKey = KEY,
    kid: str = KID,
    **claims: Any,
) -> str:
    """An assertion with edge-jwt's claims; ``claims`` override (``None`` removes)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": "kong-edge",
        "aud": AUDIENCE,
        "sub": "6f1c2a9e-0b7d-4f6b-9a51-1d6b8f0e2c33",
        "email": "ann@example.com",
        "roles": ["user", "seller"],
        "scope": "profile seller",
        "jti": secrets.token_hex(8),
        "assertion_id": secrets.token_urlsafe(16),
        "req_method": method,
        "req_path": path,
        "iat": now,
        "exp": now + 30,
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


class FakeRedis:
    """The commands RedisAssertionStore sends (``EXISTS``, ``SET NX EX``, pipelined), on a
    dict; records each round trip. ``down`` makes every call raise ``OSError`` (what
    redis-py's connection errors derive from)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.ttls: dict[str, int] = {}
        self.round_trips: list[list[tuple[Any, ...]]] = []
        self.down = False

    def _run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if self.down:
            raise ConnectionRefusedError("redis down")
        self.round_trips.append(commands)
        out: list[Any] = []
        for name, *args in commands:
            if name == "exists":
                out.append(int(args[0] in self.values))
            else:
                key, value, nx, ex = args
                if nx and key in self.values:
                    out.append(None)
                else:
                    self.values[key], self.ttls[key] = value, ex
                    out.append(True)
        return out

    def set(self, name: str, value: str, *, nx: bool, ex: int) -> Any:
        return self._run([("set", name, value, nx, ex)])[0]

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self._run)


class FakePipeline:
    def __init__(self, run: Callable[[list[tuple[Any, ...]]], list[Any]]) -> None:
        self._run = run
        self._commands: list[tuple[Any, ...]] = []

    def exists(self, name: str) -> None:
        self._commands.append(("exists", name))

    def set(self, name: str, value: str, *, nx: bool, ex: int) -> None:
        self._commands.append(("set", name, value, nx, ex))

    def execute(self) -> list[Any]:
        return self._run(self._commands)
