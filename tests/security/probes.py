"""What every case checks: the status, and that no upstream saw an identity the client chose.

An identity header is any header the backend would read as one: its name, case-folded with
``_`` read as ``-`` (WSGI folds both onto ``HTTP_X_USER_ID``), starting with ``x-user-`` or
equal to ``x-identity-assertion`` (docs/identity-assertion.md). The only identity an
upstream may see is the one edge-jwt set for the token's owner: each header once, and an
assertion that verifies with the gateway's public key and names that owner.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import jwt

from tests.security.stack import Stack
from tests.support.backend import User, bearer

PROFILE = "/api/auth/profile"
TAP = "/sec-rec/probe"
TAP_OPEN = "/sec-open/probe"
ISSUER = "https://auth.local"
AUDIENCE = "marketplace-api"
GATEWAY_SETS = ("x-user-id", "x-user-email", "x-user-roles", "x-user-scopes")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def is_identity_header(name: str) -> bool:
    folded = name.lower().replace("_", "-")
    return folded.startswith("x-user-") or folded == "x-identity-assertion"


def spoofed(victim: User) -> list[tuple[str, str]]:
    """Identity headers an attacker sends, claiming to be ``victim`` with the staff role."""
    return [
        ("X-User-Id", victim.id),
        ("X-User-Email", victim.email),
        ("X-User-Roles", "user,staff"),
        ("X-User-Scopes", "profile seller"),
        ("X-Identity-Assertion", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"),
    ]


def identity_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in record["headers"] if is_identity_header(k)]


def assert_upstream_identity(stack: Stack, since: int, owner: User | None) -> int:
    """Every request the tap got since ``since`` carried no identity (``owner`` None) or
    exactly the gateway's identity for ``owner``; returns how many requests it got."""
    records = stack.upstream.requests[since:]
    keys = jwt.PyJWKSet.from_dict(json.loads(stack.backend.gateway_jwks.read_text()))
    for record in records:
        seen = identity_of(record)
        if owner is None:
            assert seen == [], f"an anonymous request reached the upstream with {seen}"
            continue
        names = sorted(k.lower() for k, _ in seen)
        assert names == sorted([*GATEWAY_SETS, "x-identity-assertion"]), seen
        values = {k.lower(): v for k, v in seen}
        assert values["x-user-id"] == owner.id and values["x-user-email"] == owner.email
        assert "staff" not in values["x-user-roles"].split(","), values
        token = values["x-identity-assertion"]
        claims = jwt.decode(
            token,
            keys[jwt.get_unverified_header(token)["kid"]].key,
            algorithms=["EdDSA"],
            audience="auth-backend",
            issuer="kong-edge",
        )
        assert claims["sub"] == owner.id, claims
    return len(records)


def assert_edge_refused(response: httpx.Response, status: int, error: str | None) -> None:
    """Kong's own JSON error with the RFC 6750 challenge: the edge answered, no upstream."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "request_id"}, body
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api"'), challenge
    if error is not None:
        assert f'error="{error}"' in challenge, challenge


def refused_everywhere(
    stack: Stack,
    headers: Sequence[tuple[str, str]],
    victim: User,
    status: int = 401,
    error: str | None = "invalid_token",
) -> None:
    """``headers`` (plus identity headers claiming ``victim``) are refused by the edge on a
    protected backend route and on the protected tap, and no upstream saw the request."""
    since = len(stack.upstream.requests)
    for path in (PROFILE, TAP):
        response = stack.client.get(path, headers=[*headers, *spoofed(victim)])
        assert_edge_refused(response, status, error)
    assert assert_upstream_identity(stack, since, None) == 0


def accepted_as(
    stack: Stack, headers: Sequence[tuple[str, str]], owner: User, victim: User
) -> None:
    """``headers`` are accepted as ``owner``'s (never ``victim``'s, whose identity headers
    ride along): the backend's profile and the tap's view agree."""
    since = len(stack.upstream.requests)
    profile = stack.client.get(PROFILE, headers=[*headers, *spoofed(victim)])
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == owner.id
    tapped = stack.client.get(TAP, headers=[*headers, *spoofed(victim)])
    assert tapped.status_code == 200, tapped.text
    assert assert_upstream_identity(stack, since, owner) == 1


def auth(token: str) -> list[tuple[str, str]]:
    return list(bearer(token).items())


# --- raw HTTP/1.1 -------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 5, quiet: float = 0.5) -> bytes:
    """Send ``data`` as it is and read until the server closes, or is ``quiet`` seconds
    silent (a kept-alive connection)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.settimeout(quiet)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(answer: bytes) -> list[int]:
    """The status code of every response in ``answer`` (several when pipelined), each
    framed by its ``Content-Length`` or chunked body."""
    codes: list[int] = []
    rest = answer
    while rest.startswith(b"HTTP/1."):
        head, _, rest = rest.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        codes.append(int(status_line.split(b" ")[1]))
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines)}
        if b"content-length" in fields:
            rest = rest[int(fields[b"content-length"]) :]
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                rest = rest[size + 2 :]
                if size == 0:
                    break
    return codes


def raw_request(
    target: str,
    headers: Iterable[tuple[str, str] | bytes],
    body: bytes = b"",
    method: str = "GET",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode()]
    for item in headers:
        lines.append(item if isinstance(item, bytes) else f"{item[0]}: {item[1]}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def refused_unknown_key(stack: Stack, token: str, victim: User) -> None:
    """A token naming a kid the issuer does not publish: 401 ``invalid_token``, or — inside
    the JWKS refetch interval, when edge-jwt cannot yet tell a bogus kid from a key the
    issuer just rotated in (kong-plugins/src/edge_plugins/jwt/key_manager.py) — 503 with
    ``Retry-After``. Either way Kong's own answer, and no upstream saw the request."""
    since = len(stack.upstream.requests)
    for path in (PROFILE, TAP):
        response = stack.client.get(path, headers=[*auth(token), *spoofed(victim)])
        if response.status_code == 503:
            assert set(response.json()) == {"message", "request_id"}, response.text
            assert response.headers["retry-after"].isdigit()
        else:
            assert_edge_refused(response, 401, "invalid_token")
    assert assert_upstream_identity(stack, since, None) == 0
