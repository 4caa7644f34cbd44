"""One attack surface for the whole suite: the real backend behind the harness gateway.

The gateway runs the repository's ``kong/kong.yml`` (prometheus, edge-trace, edge-jwt and
edge-rate-limit as configured there; only addresses, the test's signing key and the test's
revocation channel are swapped in, see ``tests/support/backend.py``, and the limits raised)
plus two routes to a recording echo upstream, the "tap":

* ``/sec-rec`` — edge-jwt's global config (a token required), like every protected route;
* ``/sec-open`` — edge-jwt ``optional: true``, like the public routes.

Whatever reached the tap is what an upstream service would have trusted; the protected
backend routes (``/api/auth/profile`` …) give the real backend's view of identity.

The suite sends hundreds of requests a minute as a handful of users from one machine; it
must measure the attacks, not the limiter (which the edge-rate-limit tests cover),
so every limit of ``kong/kong.yml`` is multiplied by :data:`RATE_LIMIT_FACTOR` and the
session client gives each request its own client address (``X-Real-IP``, honoured because
the test client is in ``trusted_ips``, as a load balancer would be) — which the backend's
per-client sign-in throttle also sees, through ``X-Forwarded-For``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import yaml

from tests.support.backend import Backend, User, repo_kong_yml, sign_up
from tests.support.harness import HarnessRunner, Upstream

PLUGINS = ("prometheus", "edge-trace", "edge-jwt", "edge-rate-limit")
RATE_LIMIT_FACTOR = 100
_addresses = itertools.count(1)


def client_address() -> str:
    """A client address no other request of the session used (10.0.0.0/8)."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@dataclass(frozen=True)
class IssuerKey:
    """The backend's current access-token signing key: tokens with chosen claims that only
    the issuer could have made (the controls, and what a parser differential needs)."""

    kid: str
    private_pem: bytes

    def mint(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private_pem, algorithm="RS256", headers={"kid": self.kid, **header}
        )


@dataclass
class Stack:
    backend: Backend
    runner: HarnessRunner
    upstream: Upstream
    client: httpx.Client
    issuer: IssuerKey

    @property
    def port(self) -> int:
        return self.runner.port

    def sign_up(self) -> User:
        return sign_up(self.client, self.backend)


def security_kong_yml(backend: Backend, tap_port: int) -> str:
    doc = repo_kong_yml(backend, plugins=PLUGINS)
    for plugin in doc["plugins"]:
        if plugin["name"] == "edge-rate-limit":  # see the module docstring
            for limit in plugin["config"]["limits"]:
                limit["limit"] *= RATE_LIMIT_FACTOR
    (required,) = [
        p["config"] for p in doc["plugins"] if p["name"] == "edge-jwt" and "route" not in p
    ]
    doc["services"].append(
        {
            "name": "tap",
            "url": f"http://127.0.0.1:{tap_port}",
            "routes": [
                {"name": "sec-rec", "paths": ["/sec-rec"]},
                {"name": "sec-open", "paths": ["/sec-open"]},
            ],
        }
    )
    doc["plugins"].append(
        {"name": "edge-jwt", "route": "sec-open", "config": {**required, "optional": True}}
    )
    return yaml.safe_dump(doc, sort_keys=False)


def issuer_key_of(backend: Backend) -> IssuerKey:
    httpx.get(backend.jwks_uri, timeout=10).raise_for_status()  # the first use makes the key
    out = backend.manage(
        "shell",
        "--verbosity",
        "0",
        "-c",
        "from cryptography.hazmat.primitives import serialization as s\n"
        "from auth_backend.tokens.keys import signing_keys\n"
        "k = signing_keys.current()\n"
        "print('kid=' + k.kid)\n"
        "print(k.private_key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, "
        "s.NoEncryption()).decode())\n",
    )
    kid = re.search(r"^kid=(\S+)$", out, re.MULTILINE)
    pem = re.search(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", out, re.DOTALL)
    assert kid and pem, out
    return IssuerKey(kid.group(1), pem.group(0).encode())
