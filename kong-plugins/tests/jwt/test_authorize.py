"""Scope and role requirements against a verified token's claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_plugins.jwt.authorize import authorize
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import InsufficientScope
from tests.support.edge_jwt import (
    RsaKey,
    access_claims,
    jwks_of,
    make_config,
)


@pytest.fixture
def config(key_file: Path, rsa_key: RsaKey) -> JwtConfig:
    return make_config(key_file, jwks=jwks_of(rsa_key))


@pytest.mark.parametrize(
    "required, mode, scope, allowed",
    [
        ([], "all", "", True),
        (["profile"], "all", "profile", True),
        (["profile", "seller"], "all", "profile", False),
        (["profile", "seller"], "any", "profile", True),
        (["seller"], "any", "profile", False),
        (["profile", "seller"], "all", "seller profile", True),
    ],
)
def test_scopes(
    key_file: Path, rsa_key: RsaKey, required: list[str], mode: str, scope: str, allowed: bool
) -> None:
    config = make_config(
        key_file, jwks=jwks_of(rsa_key), required_scopes=required, scopes_match=mode
    )
    if allowed:
        authorize(config, access_claims(scope=scope))
    else:
        with pytest.raises(InsufficientScope, match="insufficient_scope"):
            authorize(config, access_claims(scope=scope))


@pytest.mark.parametrize(
    "required, mode, roles, allowed",
    [
        (["staff"], "all", ["user"], False),
        (["staff"], "all", ["user", "staff"], True),
        (["staff", "seller"], "all", ["user", "staff"], False),
        (["staff", "seller"], "any", ["user", "staff"], True),
        (["staff", "seller"], "any", ["user"], False),
    ],
)
def test_roles(
    key_file: Path, rsa_key: RsaKey, required: list[str], mode: str, roles: list[str], allowed: bool
) -> None:
    config = make_config(key_file, jwks=jwks_of(rsa_key), required_roles=required, roles_match=mode)
    if allowed:
        authorize(config, access_claims(roles=roles))
    else:
        with pytest.raises(InsufficientScope, match="insufficient_role"):
            authorize(config, access_claims(roles=roles))
