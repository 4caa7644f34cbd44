"""ASGI middleware (Starlette, FastAPI, any ASGI 3 app): the verified gateway identity.

Pure ASGI, no framework dependency::

    app = EdgeIdentityMiddleware(app, jwks="/etc/edge/gateway-jwks.json", audience="orders",
                                 redis_url="redis://redis:6379/0")

(or ``app.add_middleware(EdgeIdentityMiddleware, jwks=…, audience=…, redis_url=…)`` in
Starlette/FastAPI). The keyword arguments are those of
:meth:`~edge_identity.verifier.AssertionVerifier.from_config`, or pass ``verifier=``.

Each HTTP and WebSocket connection's ``scope["state"]`` then holds ``edge_identity`` (a
:class:`~edge_identity.rules.GatewayIdentity`, or ``None``: anonymous) and
``edge_identity_rejection`` — ``request.state.edge_identity`` in Starlette and FastAPI. The
middleware never answers by itself. The checks' Redis round trip runs in a worker thread
(``asyncio.to_thread``), so the event loop never waits on it: an asyncio server is needed
(uvicorn, hypercorn, granian).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from edge_identity.rules import Rejection
from edge_identity.verifier import (
    ASSERTION_HEADER,
    AssertionVerifier,
    IdentityResult,
    cgi_headers,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_path(scope: Scope) -> str:
    """The whole path the client (the gateway) sent, decoded: what ``req_path`` binds.

    ``raw_path`` (the bytes received) when the server gives it, else ``root_path`` + ``path``
    (servers differ on whether ``path`` already includes ``root_path``).
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        return unquote(bytes(raw).split(b"?", 1)[0].decode("latin-1"))
    root, path = str(scope.get("root_path") or ""), str(scope.get("path") or "")
    return path if path.startswith(root) else root + path


class EdgeIdentityMiddleware:
    """Sets ``scope["state"]["edge_identity"]`` and ``…["edge_identity_rejection"]``."""

    def __init__(
        self, app: ASGIApp, *, verifier: AssertionVerifier | None = None, **config: Any
    ) -> None:
        self.app = app
        self.verifier = (
            verifier if verifier is not None else AssertionVerifier.from_config(**config)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            result = await self.identity(scope)
            state = scope.setdefault("state", {})
            state["edge_identity"] = result.identity
            state["edge_identity_rejection"] = result.rejection
        await self.app(scope, receive, send)

    async def identity(self, scope: Scope) -> IdentityResult:
        environ = cgi_headers(scope.get("headers") or ())
        if not environ.get(ASSERTION_HEADER):
            return IdentityResult(rejection=Rejection.MISSING)
        method = str(scope.get("method") or "GET")  # a WebSocket handshake is a GET
        return await asyncio.to_thread(
            self.verifier.verify_request, environ, method, request_path(scope)
        )
