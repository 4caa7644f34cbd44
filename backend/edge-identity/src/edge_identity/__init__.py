"""Verify the Kong edge's ``X-Identity-Assertion`` (docs/identity-assertion.md).

:class:`AssertionVerifier` runs every check; :mod:`edge_identity.django` and
:mod:`edge_identity.asgi` put its answer on each request. See the package README.
"""

from edge_identity.keys import GatewayKeys
from edge_identity.rules import AssertionRejected, GatewayIdentity, Rejection
from edge_identity.store import (
    Admission,
    AssertionStore,
    RedisAssertionStore,
    StoreUnavailable,
)
from edge_identity.verifier import AssertionVerifier, IdentityResult

__all__ = [
    "Admission",
    "AssertionRejected",
    "AssertionStore",
    "AssertionVerifier",
    "GatewayIdentity",
    "GatewayKeys",
    "IdentityResult",
    "RedisAssertionStore",
    "Rejection",
    "StoreUnavailable",
]
