"""The caller of a gateway-authenticated DRF view, typed as this project sets it up.

``UNAUTHENTICATED_USER`` and ``UNAUTHENTICATED_TOKEN`` are ``None`` (settings.py) and
:class:`~auth_backend.identity.authentication.GatewayAssertionAuthentication` returns an
accounts ``User`` with its :class:`GatewayIdentity`: ``request.user`` is a ``User`` or
``None``, never DRF's ``AnonymousUser`` (which is what the stubs' type allows).
"""

from __future__ import annotations

from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from auth_backend.accounts.models import User
from edge_identity import GatewayIdentity


def request_user(request: Request) -> User | None:
    """The asserted user of ``request``, or ``None`` when it has none."""
    user: object = request.user
    return user if isinstance(user, User) else None


def request_identity(request: Request) -> GatewayIdentity | None:
    """The gateway identity of ``request`` (``request.auth``), or ``None``."""
    identity: object = request.auth
    return identity if isinstance(identity, GatewayIdentity) else None


def authenticated_user(request: Request) -> User:
    """The user of a view whose permission classes require one (``IsAuthenticated``)."""
    user = request_user(request)
    if user is None:  # only if a view ever lost IsAuthenticated: the same 401 as it gives
        raise NotAuthenticated()
    return user
