"""Account takeover and lock-out through the gateway (backend/docs/accounts.md).

* Owner lock-out: failed sign-ins from other addresses never block the owner's own, so the
  backend must see each client's address behind the gateway, configured as ``make run``
  configures it (``scripts/local-backend.env``, which ``tests/harness/backend.py`` applies).
"""

from __future__ import annotations

import httpx

from tests.harness.backend import PASSWORD, User
from tests.security.stack import Stack, client_address

LOGIN = "/api/auth/login"


def _login(stack: Stack, email: str, password: str, address: str) -> httpx.Response:
    return stack.client.post(
        LOGIN, json={"email": email, "password": password}, headers={"X-Real-IP": address}
    )


def test_wrong_passwords_from_other_addresses_do_not_lock_the_owner_out(
    stack: Stack, fresh_user: User
) -> None:
    for _ in range(5):  # LOGIN_THROTTLE_FAILURES, each from an address of its own
        wrong = _login(stack, fresh_user.email, "not-the-password-1", client_address())
        assert wrong.status_code == 401, wrong.text
    owner = _login(stack, fresh_user.email, PASSWORD, client_address())
    assert owner.status_code == 200, owner.text
    assert "access_token" in owner.json()


def test_control_wrong_passwords_from_one_address_do_block_it(
    stack: Stack, fresh_user: User
) -> None:
    address = client_address()
    for _ in range(5):
        assert _login(stack, fresh_user.email, "not-the-password-1", address).status_code == 401
    blocked = _login(stack, fresh_user.email, PASSWORD, address)
    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["Retry-After"]) >= 1
