"""The route's scope and role requirements, checked against a verified token's claims."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import InsufficientScope


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes of a token: the space-separated ``scope`` claim (RFC 8693 §4.2)."""
    scope = claims.get("scope", "")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def granted_roles(claims: Mapping[str, Any]) -> frozenset[str]:
    roles = claims.get("roles", [])
    return (
        frozenset(r for r in roles if isinstance(r, str))
        if isinstance(roles, list)
        else frozenset()
    )


def _satisfies(granted: frozenset[str], required: Sequence[str], mode: str) -> bool:
    if not required:
        return True
    if mode == "any":
        return any(item in granted for item in required)
    return all(item in granted for item in required)


def authorize(config: JwtConfig, claims: Mapping[str, Any]) -> None:
    """The route's scope and role requirements; raises :class:`InsufficientScope` (403)."""
    if not _satisfies(granted_scopes(claims), config.required_scopes, config.scopes_match):
        raise InsufficientScope("insufficient_scope")
    if not _satisfies(granted_roles(claims), config.required_roles, config.roles_match):
        raise InsufficientScope("insufficient_role")
