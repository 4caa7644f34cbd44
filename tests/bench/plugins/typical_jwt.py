"""``typical-jwt``: bearer-token check the way most kong-pdk plugins do it.

kong-pdk's defaults (threads mode, Lua-style ``value, err`` returns); PyJWT's
``PyJWKClient`` for the key (it caches the key set) and ``jwt.decode`` — a full RS256
verification — on every request; one ``kong.service.request.set_header`` per identity
header; the subject shared with the rate limiter. 6 round trips per accepted request. It
signs no identity assertion and clears no spoofed header variants (edge-jwt does both).
"""

from __future__ import annotations

import os
from typing import Any

import jwt

NAME = os.environ.get("TYPICAL_NAME", "typical-jwt")  # the bench runs a gevent copy too
version = "0.1.0"
priority = 1450  # edge-jwt's
Schema = (
    {"jwks_uri": {"type": "string", "required": True}},
    {"issuer": {"type": "string", "required": True}},
    {"audience": {"type": "string", "required": True}},
)

_jwk_clients: dict[str, jwt.PyJWKClient] = {}


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        uri = config["jwks_uri"]
        self.jwks = _jwk_clients.setdefault(uri, jwt.PyJWKClient(uri))

    def access(self, kong: Any) -> None:
        authorization, _ = kong.request.get_header("authorization")
        if not authorization or not authorization.lower().startswith("bearer "):
            kong.response.exit(401, {"message": "Unauthorized"})
            return
        token = authorization[7:]
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.config["audience"],
                issuer=self.config["issuer"],
            )
        except jwt.PyJWTError:
            kong.response.exit(401, {"message": "Unauthorized"})
            return
        kong.service.request.set_header("x-user-id", claims["sub"])
        kong.service.request.set_header("x-user-email", claims.get("email", ""))
        kong.service.request.set_header("x-user-roles", ",".join(claims.get("roles", [])))
        kong.service.request.set_header("x-user-scopes", claims.get("scope", ""))
        kong.ctx.shared.set("subject", claims["sub"])


if __name__ == "__main__":
    from kong_pdk.cli import start_dedicated_server

    start_dedicated_server(NAME, Plugin, version, priority, Schema)
