"""What can go wrong in edge-jwt, and how a rejection is told to the client.

Exceptions are specific so callers can map each to exactly one outcome: a bad token is the
client's fault (401/403), a missing key or signing key is ours (503 under the ``closed``
failure policy). Texts that reach a client are fixed per RFC 6750 error code: nothing in a
response says *why* a token failed beyond that code (the reason goes to logs and metrics);
the ``WWW-Authenticate`` descriptions are here, the response messages in
:mod:`edge_plugins.responses`.
"""

from __future__ import annotations

import enum


class EdgeJwtError(Exception):
    """Base of every error raised by the edge-jwt core."""


class ConfigError(EdgeJwtError, ValueError):
    """The plugin configuration is unsafe or inconsistent (refused at instance start)."""


class TokenRejected(EdgeJwtError):
    """The client's token (or the way it was sent) is not acceptable.

    ``reason`` is a short, stable metrics label (``"expired"``, ``"bad_signature"`` …);
    ``error`` the RFC 6750 error code the client sees.
    """

    def __init__(self, reason: str, error: BearerError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error or BearerError.INVALID_TOKEN


class InsufficientScope(EdgeJwtError):
    """A valid token lacks the scopes or roles the route requires (403)."""

    def __init__(self, reason: str = "insufficient_scope") -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(EdgeJwtError):
    """No verification key can decide: the key source is down and nothing usable is cached.

    ``retry_after`` is how many seconds until the next fetch attempt, for ``Retry-After``.
    """

    def __init__(
        self, message: str = "verification keys unavailable", *, retry_after: int = 5
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class SigningKeyError(EdgeJwtError):
    """The gateway's assertion signing key cannot be loaded or is of an unsupported type."""


class BearerError(enum.StrEnum):
    """RFC 6750 §3.1 error codes."""

    INVALID_REQUEST = "invalid_request"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an RFC 6750 error code
    INSUFFICIENT_SCOPE = "insufficient_scope"


# One generic description per code: enough for a well-behaved client, nothing for an attacker.
_DESCRIPTIONS = {
    BearerError.INVALID_REQUEST: "The request carries the access token more than once or "
    "in an unsupported way",
    BearerError.INVALID_TOKEN: "The access token is invalid",
    BearerError.INSUFFICIENT_SCOPE: "The access token does not grant access to this resource",
}


def _quoted(value: str) -> str:
    """An RFC 7230 quoted-string; realm is validated at config time, this is a second fence."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(realm: str, error: BearerError | None = None) -> str:
    """The ``WWW-Authenticate`` value for a Bearer challenge (RFC 6750 §3).

    Without ``error`` (the request carried no token at all) the challenge names only the
    realm, as §3.1 requires: "the resource server SHOULD NOT include an error code".
    """
    parts = [f"realm={_quoted(realm)}"]
    if error is not None:
        parts.append(f"error={_quoted(error.value)}")
        parts.append(f"error_description={_quoted(_DESCRIPTIONS[error])}")
    return "Bearer " + ", ".join(parts)
