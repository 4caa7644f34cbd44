"""Which request headers claim an identity, so the edge can strip them
(docs/identity-assertion.md).

Only the edge may tell the backend who the caller is. A client that sends ``X-User-Id``
itself must not reach the backend with it, and neither may a variant that a framework
folds onto the same name: Django (like every CGI-style server) maps ``X-User_Id``,
``x-user-id`` and ``X-USER-ID`` all to ``HTTP_X_USER_ID``. So the test is made on the name
case-folded and with ``_`` read as ``-``, and matches the whole ``x-user-`` family (not
just the four headers we set) plus ``x-identity-assertion``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IDENTITY_HEADERS = (
    "X-User-Id",
    "X-User-Email",
    "X-User-Roles",
    "X-User-Scopes",
    "X-Identity-Assertion",
)

_PREFIX = "x-user-"
_ASSERTION = "x-identity-assertion"


def normalize_header_name(name: str) -> str:
    """The name as a CGI-style server sees it: case-folded, ``_`` and ``-`` the same."""
    return name.strip().casefold().replace("_", "-")


def is_spoofable(name: str) -> bool:
    """Whether a header with this name could pass for identity asserted by the edge."""
    normalized = normalize_header_name(name)
    return normalized.startswith(_PREFIX) or normalized == _ASSERTION


def spoofable_header_names(header_names: Iterable[str]) -> list[str]:
    """The request's identity-looking header names, as sent, for clearing (dupes dropped)."""
    return list(dict.fromkeys(name for name in header_names if is_spoofable(name)))


@dataclass(frozen=True)
class Identity:
    """The caller as the edge asserts it upstream, from a verified token's claims."""

    subject: str
    email: str
    roles: tuple[str, ...]
    scope: str  # space-separated, normalised (single spaces, no padding)
    token_id: str

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Identity:
        """Claims are already type-checked by ``verify.verify_token``."""
        return cls(
            subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            roles=tuple(claims.get("roles") or ()),
            scope=" ".join(str(claims.get("scope") or "").split()),
            token_id=str(claims["jti"]),
        )

    def upstream_headers(self, assertion: str) -> dict[str, str]:
        """The headers the backend receives: each equals the assertion's claim exactly.

        The backend (edge_identity.rules.plain_headers_agree) voids the identity when a plain
        header disagrees with the assertion, so values are derived the same way there:
        ``X-User-Roles`` is ``",".join(roles)``, ``X-User-Scopes`` the scope string. Empty
        values are left out rather than sent as empty headers.
        """
        headers = {"X-User-Id": self.subject}
        if self.email:
            headers["X-User-Email"] = self.email
        if self.roles:
            headers["X-User-Roles"] = ",".join(self.roles)
        if self.scope:
            headers["X-User-Scopes"] = self.scope
        headers["X-Identity-Assertion"] = assertion
        return headers
