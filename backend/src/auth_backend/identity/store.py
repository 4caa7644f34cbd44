"""The once-only and revocation checks of the assertion (docs/identity-assertion.md).

``edge-identity``'s :class:`~edge_identity.store.RedisAssertionStore` on the backend's Redis
(``REDIS_URL`` through the revocation publisher's client, ``REVOCATIONS_REDIS_TIMEOUT_MS``):
``SET <IDENTITY_ASSERTION_KEY_PREFIX>:seen:<assertion_id> 1 NX EX <ttl>`` and ``EXISTS
<REVOCATIONS_KEY_PREFIX>:jti:<jti>`` in one round trip, the answer about the token kept at
most :data:`~edge_identity.store.REVOCATION_CACHE_SECONDS`. What is ours: the database is
asked too (one indexed read, backend/docs/revocation.md), because a revocation made while
Redis was down has no key. Redis unreachable raises
:class:`~edge_identity.StoreUnavailable` and the request is anonymous (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from auth_backend.tokens import revocation
from auth_backend.tokens.selectors import access_token_record
from edge_identity.store import Admission, AssertionStore, RedisAssertionStore

__all__ = ["Admission", "RedisIdentityStore", "identity_store", "revoked_in_database"]


def revoked_in_database(token_id: str) -> bool:
    """Whether the database, the source of truth (backend/docs/revocation.md), has revoked the
    user token: the token itself or its session. A revocation made while Redis was down never
    reached its Redis key; without this answer the token would open the backend again once
    Redis is back. A token without a record (purged after expiry) is not revoked here."""
    record = access_token_record(token_id)
    return record is not None and (record.revoked_at is not None or record.family.is_revoked)


def _seen_key(assertion_id: str) -> str:
    return f"{settings.IDENTITY_ASSERTION_KEY_PREFIX}:seen:{assertion_id}"


class RedisIdentityStore(RedisAssertionStore):
    """The production store: key names and client from the settings, read per request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(
            revocation.redis_client,
            seen_key=_seen_key,
            revoked_key=revocation.revoked_jti_key,
            also_revoked=revoked_in_database,
            clock=clock,
        )


identity_store: AssertionStore = RedisIdentityStore()
