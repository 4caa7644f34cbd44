"""Per-account sign-in throttling in the backend (auth_backend.accounts.throttling), real Redis.

Time is Redis's: instead of sleeping out a wait, a test deletes the block key (what its
expiry does) and reads the next wait from ``Retry-After`` and the key's PTTL.
"""

from __future__ import annotations

import logging
import uuid
from ipaddress import ip_network

import pytest
from accounts_support import PASSWORD, error_code, events, make_user, post
from prometheus_client import REGISTRY

from auth_backend.accounts import throttling
from auth_backend.events.services import EventType
from tests.support.services import closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.redis]

OWNER_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.9"


@pytest.fixture
def throttle(settings, redis_url, redis_conn):
    """The throttle on: 3 failures per client, 6 per account, 10 s doubling to at most 80 s.

    (Waits far longer than a request, Argon2 included, so none ends during a test.)
    """
    prefix = f"test.login-throttle.{uuid.uuid4().hex}"
    settings.LOGIN_THROTTLE_ENABLED = True
    settings.LOGIN_THROTTLE_KEY_PREFIX = prefix
    settings.LOGIN_THROTTLE_FAILURES = 3
    settings.LOGIN_THROTTLE_ACCOUNT_FAILURES = 6
    settings.LOGIN_THROTTLE_BASE_DELAY_SECONDS = 10
    settings.LOGIN_THROTTLE_MAX_DELAY_SECONDS = 80
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 60
    settings.LOGIN_THROTTLE_TRUSTED_PROXIES = ()
    yield prefix
    keys = list(redis_conn.scan_iter(f"{prefix}:*"))
    if keys:
        redis_conn.delete(*keys)


def login(client, email="alice@example.com", password=PASSWORD, ip=OWNER_IP, **extra):
    return post(client, "login", {"email": email, "password": password}, REMOTE_ADDR=ip, **extra)


def wrong(client, email="alice@example.com", ip=OWNER_IP, times=1):
    for _ in range(times):
        assert login(client, email, "wrong-password-123", ip).status_code == 401


def time_passes(redis_conn, prefix):
    """Every running wait ends (the block keys expire); counters stay."""
    blocks = list(redis_conn.scan_iter(f"{prefix}:*:block"))
    if blocks:
        redis_conn.delete(*blocks)


def throttled_count(scope: str) -> float:
    return REGISTRY.get_sample_value("auth_login_throttled_total", {"scope": scope}) or 0.0


def about(wait: int, expected: int) -> bool:
    """``wait`` is what is left of ``expected`` seconds (a busy machine may take a few)."""
    return expected - 5 <= wait <= expected


def assert_throttled(response, retry_after: int) -> None:
    assert response.status_code == 429, response.content
    wait = int(response["Retry-After"])
    assert about(wait, retry_after), wait
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == "throttled"
    assert body["error"]["details"] == {"retry_after": wait}
    assert "Traceback" not in response.content.decode()


def test_after_the_failure_limit_even_the_right_password_waits(client, throttle):
    make_user()
    wrong(client, times=3)
    failed_events = len(events(EventType.LOGIN_FAILED))
    before = throttled_count("client")

    response = login(client)  # the right password, refused before it is looked at

    assert_throttled(response, 10)
    assert throttled_count("client") == before + 1
    assert len(events(EventType.LOGIN_FAILED)) == failed_events  # refused, not an attempt


def test_the_wait_doubles_with_each_failure_and_is_bounded(client, throttle, redis_conn):
    make_user()
    wrong(client, times=3)
    waits = []
    for _ in range(6):
        refused = login(client, password="wrong-password-123")
        waits.append(int(refused["Retry-After"]))
        time_passes(redis_conn, throttle)
        wrong(client)  # one more failure once the wait is over

    expected = [10, 20, 40, 80, 80, 80]
    assert all(about(w, e) for w, e in zip(waits, expected, strict=True)), waits


def test_waiting_is_enough_and_a_right_password_resets(client, throttle, redis_conn):
    make_user()
    wrong(client, times=3)
    assert login(client).status_code == 429
    time_passes(redis_conn, throttle)

    assert login(client).status_code == 200

    # The count starts again: three more failures before the next wait.
    wrong(client, times=3)
    assert_throttled(login(client), 10)


def test_unknown_addresses_are_throttled_alike(client, throttle):
    """A 429 must not tell whether the address has an account."""
    make_user()
    wrong(client, "alice@example.com", times=3)
    wrong(client, "nobody@example.com", times=3)

    known = login(client, "alice@example.com")
    unknown = login(client, "nobody@example.com")

    assert_throttled(known, 10)
    assert_throttled(unknown, 10)
    assert known.json()["error"]["code"] == unknown.json()["error"]["code"]


def test_the_address_is_throttled_in_any_case(client, throttle):
    make_user()
    wrong(client, "alice@example.com", times=2)
    wrong(client, " ALICE@Example.com", times=1)

    assert error_code(login(client)) == "throttled"


def test_an_attacker_elsewhere_does_not_block_the_owner(client, throttle):
    """The client limit is per account and address: the owner signs in from theirs."""
    make_user()
    wrong(client, ip=ATTACKER_IP, times=3)
    assert login(client, ip=ATTACKER_IP).status_code == 429

    assert login(client, ip=OWNER_IP).status_code == 200


def test_guessing_from_many_addresses_hits_the_account_limit_but_not_a_known_client(
    client, throttle
):
    make_user()
    assert login(client, ip=OWNER_IP).status_code == 200  # the owner's usual address
    before = throttled_count("account")
    for n in range(6):  # 6 failures for the account, 1 per address: no client limit reached
        wrong(client, ip=f"203.0.113.{10 + n}")

    stranger = login(client, ip="203.0.113.99")
    assert_throttled(stranger, 10)
    assert throttled_count("account") == before + 1

    # The address that signed in lately is exempt from the account-wide limit.
    assert login(client, ip=OWNER_IP).status_code == 200


def test_ipv6_clients_are_one_client_per_slash_64(client, throttle):
    make_user()
    for host in range(1, 4):
        wrong(client, ip=f"2001:db8:1:2::{host}")

    assert login(client, ip="2001:db8:1:2:ffff::1").status_code == 429
    assert login(client, ip="2001:db8:1:3::1").status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(client, throttle, settings):
    make_user()
    # A direct caller cannot pick a fresh client per attempt with X-Forwarded-For.
    for n in range(3):
        login(
            client,
            password="wrong-password-123",
            ip=ATTACKER_IP,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    assert login(client, ip=ATTACKER_IP, HTTP_X_FORWARDED_FOR="192.0.2.77").status_code == 429

    # Behind the gateway (a trusted proxy) the client is the right-most untrusted hop.
    settings.LOGIN_THROTTLE_TRUSTED_PROXIES = (ip_network("10.0.0.0/8"),)
    gateway = {"ip": "10.1.2.3"}
    for _ in range(3):
        login(
            client,
            password="wrong-password-123",
            **gateway,
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {ATTACKER_IP}, 10.9.9.9",
        )
    assert login(client, **gateway, HTTP_X_FORWARDED_FOR=ATTACKER_IP).status_code == 429
    assert login(client, **gateway, HTTP_X_FORWARDED_FOR=OWNER_IP).status_code == 200


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "198.51.100.7"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 5.6.7.8"}, "5.6.7.8"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "5.6.7.8, 10.0.0.2"}, "5.6.7.8"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "junk, 10.0.0.2"}, "10.0.0.2"),
        ({"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1"),
        ({"REMOTE_ADDR": "not-an-ip"}, None),
    ],
)
def test_client_address(settings, meta, expected):
    settings.LOGIN_THROTTLE_TRUSTED_PROXIES = (ip_network("10.0.0.0/8"),)
    assert throttling.client_address(meta) == expected


def test_redis_down_fails_open_logged_and_counted(client, throttle, settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/15"
    make_user()

    def errors(operation: str) -> float:
        return (
            REGISTRY.get_sample_value("auth_login_throttle_errors_total", {"operation": operation})
            or 0.0
        )

    before = {operation: errors(operation) for operation in ("check", "failure", "success")}
    with caplog.at_level(logging.WARNING, logger="auth_backend.accounts.throttling"):
        wrong(client, times=4)  # over the limit, but nothing can count: not throttled
        assert login(client).status_code == 200

    assert errors("check") == before["check"] + 5
    assert errors("failure") == before["failure"] + 4
    assert errors("success") == before["success"] + 1
    assert any("fail open" in record.getMessage() for record in caplog.records)
