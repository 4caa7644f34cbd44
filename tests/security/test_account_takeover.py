"""Account takeover and lock-out through the gateway (backend/docs/accounts.md).

* Owner lock-out: failed sign-ins from other addresses never block the owner's own, so the
  backend must see each client's address behind the gateway, configured as ``make run``
  configures it (``scripts/local-backend.env``, which ``tests/support/backend.py`` applies).
* The second factor: one budget of wrong codes per account across every challenge and
  ``2fa/disable``; recovery codes (single use, regenerable) in place of a TOTP code.
* A 2FA challenge started with the old password dies with a password reset, and with
  disabling 2FA.
* Look-alike addresses: one account per mailbox (IDNA/UTS-46 domains, case), and local
  parts that are not ASCII refused.
* Hostile JSON (nested 100000 deep, too large, malformed) is a 400 ``parse_error`` in the
  backend's error shape, with no exception text to the client and no traceback in the log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import jwt
import pyotp
import pytest

from tests.security.stack import Stack, client_address
from tests.support.backend import PASSWORD, User, bearer

LOGIN = "/api/auth/login"
LOGIN_2FA = "/api/auth/login/2fa"
PASSWORD_RESET = "/api/auth/password/reset"
PASSWORD_RESET_CONFIRM = "/api/auth/password/reset/confirm"
TWO_FACTOR_SETUP = "/api/auth/2fa/setup"
TWO_FACTOR_ENABLE = "/api/auth/2fa/enable"
TWO_FACTOR_DISABLE = "/api/auth/2fa/disable"
TWO_FACTOR_RECOVERY_CODES = "/api/auth/2fa/recovery-codes"


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


# --- the second factor ------------------------------------------------------------------------


def _code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def _wrong_code(secret: str) -> str:
    """A 6-digit code no step within the accepted window (±1) of ``secret`` shows."""
    window = {_code(secret, steps) for steps in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000, 10**6, 7919)) if c not in window)


def _with_two_factor(stack: Stack, user: User) -> tuple[str, list[str]]:
    """Turn 2FA on for ``user``: its TOTP secret and the recovery codes shown once."""
    setup = stack.client.post(TWO_FACTOR_SETUP, headers=bearer(user.access_token))
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    enabled = stack.client.post(
        TWO_FACTOR_ENABLE, json={"code": _code(secret)}, headers=bearer(user.access_token)
    )
    assert enabled.status_code == 200, enabled.text
    return secret, enabled.json().get("recovery_codes", [])


def _challenge(stack: Stack, user: User, password: str = PASSWORD) -> str:
    response = _login(stack, user.email, password, client_address())
    assert response.status_code == 200, response.text
    assert response.json()["requires_2fa"] is True
    return str(response.json()["challenge_token"])


def _finish(stack: Stack, challenge: str, code: str) -> httpx.Response:
    return stack.client.post(LOGIN_2FA, json={"challenge_token": challenge, "code": code})


def test_wrong_codes_over_many_challenges_spend_one_budget(stack: Stack, fresh_user: User) -> None:
    """8 right passwords from 8 addresses x 5 wrong codes each: the account's budget of
    wrong codes (TWO_FACTOR_FAILURE_LIMIT, 10 per window) ends the guessing, whatever the
    challenge, and the right code is refused too until the window has passed."""
    secret, _ = _with_two_factor(stack, fresh_user)
    wrong = _wrong_code(secret)
    statuses: list[int] = []
    for _ in range(8):
        challenge = _challenge(stack, fresh_user)
        statuses += [_finish(stack, challenge, wrong).status_code for _ in range(5)]
    assert statuses.count(401) == 10, statuses
    assert set(statuses[10:]) == {429}, statuses
    refused = _finish(stack, _challenge(stack, fresh_user), _code(secret, 1))
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "two_factor_throttled"
    assert int(refused.headers["Retry-After"]) >= 1


def test_disable_spends_the_same_budget(stack: Stack, fresh_user: User) -> None:
    secret, _ = _with_two_factor(stack, fresh_user)
    wrong = _wrong_code(secret)
    statuses = [
        stack.client.post(
            TWO_FACTOR_DISABLE, json={"code": wrong}, headers=bearer(fresh_user.access_token)
        ).status_code
        for _ in range(12)
    ]
    assert statuses == [400] * 10 + [429] * 2, statuses
    # ... and the login step has nothing left either.
    refused = _finish(stack, _challenge(stack, fresh_user), _code(secret, 1))
    assert refused.status_code == 429, refused.text


def test_a_recovery_code_signs_in_once(stack: Stack, fresh_user: User) -> None:
    _, codes = _with_two_factor(stack, fresh_user)
    assert len(codes) == 10 and len(set(codes)) == 10
    first = _finish(stack, _challenge(stack, fresh_user), codes[0])
    assert first.status_code == 200, first.text
    again = _finish(stack, _challenge(stack, fresh_user), codes[0])
    assert again.status_code == 401, again.text
    assert again.json()["error"]["code"] == "invalid_code"


def test_regenerated_recovery_codes_replace_the_old_ones(stack: Stack, fresh_user: User) -> None:
    secret, old = _with_two_factor(stack, fresh_user)
    regenerated = stack.client.post(
        TWO_FACTOR_RECOVERY_CODES,
        json={"code": _code(secret, 1)},
        headers=bearer(fresh_user.access_token),
    )
    assert regenerated.status_code == 200, regenerated.text
    new = regenerated.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert _finish(stack, _challenge(stack, fresh_user), old[1]).status_code == 401
    assert _finish(stack, _challenge(stack, fresh_user), new[1]).status_code == 200


def test_a_challenge_started_before_a_password_reset_is_dead_after_it(
    stack: Stack, fresh_user: User
) -> None:
    secret, _ = _with_two_factor(stack, fresh_user)
    challenge = _challenge(stack, fresh_user)  # the old password, e.g. a phished one
    asked = stack.client.post(PASSWORD_RESET, json={"email": fresh_user.email})
    assert asked.status_code == 202, asked.text
    token = stack.backend.mailed_token(fresh_user.email, "password reset")
    reset = stack.client.post(
        PASSWORD_RESET_CONFIRM, json={"token": token, "new_password": "a-new-passphrase-77"}
    )
    assert reset.status_code == 200, reset.text
    finished = _finish(stack, challenge, _code(secret, 1))
    assert finished.status_code == 401, finished.text
    assert finished.json()["error"]["code"] == "challenge_expired"
    # Control: a challenge started with the new password still works.
    fresh = _finish(stack, _challenge(stack, fresh_user, "a-new-passphrase-77"), _code(secret, 1))
    assert fresh.status_code == 200, fresh.text


def test_a_challenge_started_before_2fa_was_disabled_is_dead_after_it(
    stack: Stack, fresh_user: User
) -> None:
    secret, _ = _with_two_factor(stack, fresh_user)
    challenge = _challenge(stack, fresh_user)
    disabled = stack.client.post(
        TWO_FACTOR_DISABLE, json={"code": _code(secret, 1)}, headers=bearer(fresh_user.access_token)
    )
    assert disabled.status_code == 200, disabled.text
    secret, _ = _with_two_factor(stack, fresh_user)  # on again, with a new secret
    finished = _finish(stack, challenge, _code(secret, 1))
    assert finished.status_code == 401, finished.text
    assert finished.json()["error"]["code"] == "challenge_expired"


# --- hostile JSON ----------------------------------------------------------------------------

# The reproduction: 200 KB, so Kong's body limit (64k, kong/kong.conf) answers it first; the
# same shape under that limit reaches the backend, whose depth limit answers it.
NESTED = b'{"email":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NESTED_UNDER_KONGS_LIMIT = b'{"email":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
TOO_LARGE = b'{"email": "a@example.com", "pad": "' + b"x" * 200_000 + b'"}'
LEAKS = ("Traceback", "RecursionError", "recursion", "Expecting", "line 1 column", "char ")


def _assert_clear_400(stack: Stack, send: Callable[[], httpx.Response]) -> None:
    logged_before = stack.backend.log.stat().st_size
    response = send()
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert response.json()["request_id"]
    assert not any(leak in response.text for leak in LEAKS), response.text
    with stack.backend.log.open("rb") as log:
        log.seek(logged_before)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged and "RecursionError" not in logged, logged[-2000:]


@pytest.mark.parametrize("path", [LOGIN, PASSWORD_RESET])
@pytest.mark.parametrize(
    "body",
    [NESTED_UNDER_KONGS_LIMIT, b'{"email": "a@example.com",', b'{"email": NaN}'],
    ids=["nested", "truncated", "nan"],
)
def test_hostile_json_is_a_clear_400(stack: Stack, path: str, body: bytes) -> None:
    _assert_clear_400(
        stack,
        lambda: stack.client.post(path, content=body, headers={"Content-Type": "application/json"}),
    )


@pytest.mark.parametrize("path", [LOGIN, PASSWORD_RESET])
@pytest.mark.parametrize("body", [NESTED, TOO_LARGE], ids=["nested", "too-large"])
def test_a_body_over_kongs_limit_is_a_clear_400_at_the_backend_too(
    stack: Stack, path: str, body: bytes
) -> None:
    """Straight to the backend (no Kong in front to answer 413): its own size limit."""
    _assert_clear_400(
        stack,
        lambda: httpx.post(
            stack.backend.url + path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        ),
    )


@pytest.mark.parametrize("path", [LOGIN, PASSWORD_RESET])
def test_the_nested_reproduction_is_kongs_413(stack: Stack, path: str) -> None:
    response = stack.client.post(path, content=NESTED, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text[:500]
    assert response.json()["message"] == "Payload too large"


# --- look-alike addresses --------------------------------------------------------------------


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_a_look_alike_domain_is_the_same_account(stack: Stack, fresh_user: User) -> None:
    """``x@example.com`` in fullwidth letters is ``x@example.com`` (IDNA/UTS-46 maps them):
    registering it creates no second account, and signing in with it is the owner's account."""
    local, domain = fresh_user.email.split("@")
    for spelling in (f"{local}@{_fullwidth(domain)}", f"{local.upper()}@{domain.upper()}"):
        registered = stack.client.post(
            "/api/auth/register", json={"email": spelling, "password": "a-passphrase-of-mine-7"}
        )
        assert registered.status_code == 202, registered.text
        signed_in = _login(stack, spelling, PASSWORD, client_address())
        assert signed_in.status_code == 200, signed_in.text
        claims = jwt.decode(signed_in.json()["access_token"], options={"verify_signature": False})
        assert claims["sub"] == fresh_user.id
    time.sleep(0.5)  # the background worker mails after the answer
    log = stack.backend.log.read_text(errors="replace")
    assert f"To: {local}@{_fullwidth(domain)}" not in log  # no second account was mailed


@pytest.mark.parametrize("local", ["\u017fam", "b\u0131ll", "\uff4a\uff4f\uff45", "a\u0301b"])
def test_ambiguous_local_parts_are_refused(stack: Stack, local: str) -> None:
    """U+017F (long s), U+0131 (dotless i), fullwidth letters and combining marks make near-
    duplicates of ASCII addresses; an address whose part before the @ is not ASCII is
    refused (400 ``invalid``) at registration, and at sign-in and reset alike."""
    email = f"{local}-{uuid.uuid4().hex[:6]}@example.com"
    for path, body in (
        ("/api/auth/register", {"email": email, "password": "a-passphrase-of-mine-7"}),
        (LOGIN, {"email": email, "password": "a-passphrase-of-mine-7"}),
        (PASSWORD_RESET, {"email": email}),
        ("/api/auth/resend-verification", {"email": email}),
    ):
        response = stack.client.post(path, json=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "invalid"
        assert "email" in response.json()["error"]["details"]["fields"]
