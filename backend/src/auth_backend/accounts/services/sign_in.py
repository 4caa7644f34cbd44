"""Sign-in: email and password, the 2FA login challenge, and finishing it with a TOTP code.

Google sign-in (:mod:`.google`) ends the same way: tokens, or a challenge from
:func:`create_login_challenge`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth_backend.accounts import throttling
from auth_backend.accounts.exceptions import (
    ChallengeExpired,
    EmailNotVerified,
    InvalidCredentials,
    InvalidLoginCode,
    LoginThrottled,
    TwoFactorThrottled,
)
from auth_backend.accounts.models import LoginChallenge, User
from auth_backend.accounts.selectors import login_challenge_by_hash, user_by_email
from auth_backend.accounts.services import one_time_tokens, second_factor
from auth_backend.accounts.services.passwords import spend_password_check_time
from auth_backend.core import tracing
from auth_backend.core.metrics import (
    LOGIN_DURATION,
    LOGIN_FAILURES,
    LOGINS,
    TWO_FACTOR_CHALLENGES,
    TWO_FACTOR_VERIFICATIONS,
)
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens.services.issuing import TokenPair, issue_token_pair

AMR_PASSWORD = "pwd"  # noqa: S105 - an RFC 8176 method name
AMR_OTP = "otp"


@dataclass(frozen=True)
class LoginResult:
    """Either a token pair, or a 2FA challenge to finish with :func:`complete_two_factor_login`."""

    tokens: TokenPair | None = None
    challenge_token: str | None = None

    def as_response(self) -> dict[str, Any]:
        if self.tokens is not None:
            return self.tokens.as_response()
        return {"requires_2fa": True, "challenge_token": self.challenge_token}


def _record_login_failure(user: User | None, reason: str, **payload: Any) -> None:
    """``LOGIN_FAILED`` in a transaction of its own: it must survive the failing request."""
    with transaction.atomic():
        record_event(
            EventType.LOGIN_FAILED,
            subject_id=str(user.pk) if user else "",
            reason=reason,
            **payload,
        )
    _count_login_failure(reason)


def _count_login_failure(reason: str) -> None:
    LOGINS.labels(status="failure", requires_2fa="false").inc()
    LOGIN_FAILURES.labels(reason=reason).inc()


def _finish_login(user: User, amr: Iterable[str], **payload: Any) -> TokenPair:
    methods = tuple(amr)
    with transaction.atomic():
        pair = issue_token_pair(user, amr=methods)
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        record_event(
            EventType.LOGIN_SUCCEEDED, subject_id=str(user.pk), amr=list(methods), **payload
        )
    return pair


@tracing.traced("accounts.login", **{"auth.method": "password"})
def login(*, email: str, password: str, client_address: str | None = None) -> LoginResult:
    """Sign in with email and password, from ``client_address`` (the throttle's client).

    * too many recent failures for this address (from this client, or from anywhere):
      429 :class:`LoginThrottled` before the password is looked at
      (:mod:`auth_backend.accounts.throttling`);
    * unknown email, wrong password, no usable password, inactive account: one 401
      :class:`InvalidCredentials`, after the same amount of Argon2 work, counted by the
      throttle;
    * right password, unverified email: 403 :class:`EmailNotVerified`;
    * 2FA enabled: a login challenge instead of tokens.

    A right password clears the throttle's counters for the address. The whole call is
    timed (``auth_login_duration_seconds``) and each outcome counted once
    (``auth_login_total``, ``auth_login_failed_total``; backend/docs/metrics.md).
    """
    with LOGIN_DURATION.time():
        return _login(email=email, password=password, client_address=client_address)


def _login(*, email: str, password: str, client_address: str | None) -> LoginResult:
    attempt = throttling.LoginAttempt.of(email, client_address)
    refused = throttling.refusal(attempt)
    if refused is not None:
        tracing.set_attributes({"auth.outcome": "throttled", "auth.throttle.scope": refused.scope})
        _count_login_failure("throttled")
        raise LoginThrottled(refused.retry_after)
    user = user_by_email(email)
    if user is None or not user.has_usable_password():
        spend_password_check_time(password)
        _record_login_failure(user, "unknown_email" if user is None else "no_password")
        throttling.record_failure(attempt)
        raise InvalidCredentials()
    if not user.check_password(password):
        _record_login_failure(user, "wrong_password")
        throttling.record_failure(attempt)
        raise InvalidCredentials()
    if not user.is_active:
        _record_login_failure(user, "inactive")
        throttling.record_failure(attempt)
        raise InvalidCredentials()
    throttling.record_success(attempt)
    if not user.email_verified:
        _record_login_failure(user, "email_not_verified")
        raise EmailNotVerified()
    if user.totp_enabled:
        tracing.set_attributes({"auth.outcome": "2fa_required"})
        challenge_token = create_login_challenge(user, amr=(AMR_PASSWORD,))
        LOGINS.labels(status="success", requires_2fa="true").inc()
        return LoginResult(challenge_token=challenge_token)
    result = LoginResult(tokens=_finish_login(user, (AMR_PASSWORD,), method="password"))
    LOGINS.labels(status="success", requires_2fa="false").inc()
    tracing.set_attributes({"auth.outcome": "success"})
    return result


def create_login_challenge(user: User, *, amr: Iterable[str] = (AMR_PASSWORD,)) -> str:
    """Start the 2FA step of a sign-in whose first factor (``amr``) succeeded.

    Returns the raw challenge token for ``{"requires_2fa": true, "challenge_token": …}``;
    ``POST login/2fa`` trades it plus a TOTP code for tokens whose ``amr`` is ``amr`` +
    ``"otp"``. Valid ``LOGIN_CHALLENGE_TTL_SECONDS``, ``LOGIN_CHALLENGE_MAX_ATTEMPTS`` wrong
    codes, one success.
    """
    raw, digest = one_time_tokens.new_token()
    now = timezone.now()
    LoginChallenge.objects.create(
        user=user,
        token_hash=digest,
        amr=list(amr),
        credentials=second_factor.credentials_fingerprint(user),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.LOGIN_CHALLENGE_TTL_SECONDS),
    )
    TWO_FACTOR_CHALLENGES.inc()
    return raw


@tracing.traced("accounts.login", **{"auth.method": "otp"})
def complete_two_factor_login(*, challenge_token: str, code: str) -> TokenPair:
    """Finish a sign-in with a TOTP code or a recovery code.

    Unknown, expired, used or exhausted challenge, or one whose account changed its
    password or TOTP secret since it was issued: 401 :class:`ChallengeExpired`. The
    account's budget of wrong codes spent: 429 :class:`TwoFactorThrottled`
    (:mod:`.second_factor`). A wrong or replayed code: 401 :class:`InvalidLoginCode`, and
    the challenge's and the account's failure counters are committed before the error is
    raised, so both limits hold across requests.
    """
    if not one_time_tokens.plausible(challenge_token):
        TWO_FACTOR_VERIFICATIONS.labels(result="challenge_expired").inc()
        raise ChallengeExpired()
    found = login_challenge_by_hash(one_time_tokens.hash_token(challenge_token))
    if found is None:
        TWO_FACTOR_VERIFICATIONS.labels(result="challenge_expired").inc()
        raise ChallengeExpired()
    max_attempts = settings.LOGIN_CHALLENGE_MAX_ATTEMPTS
    failure: Exception | None = None
    pair: TokenPair | None = None
    with transaction.atomic():
        # Lock order user -> challenge everywhere a user's TOTP state is touched.
        user = User.objects.select_for_update().filter(pk=found.user_id).first()
        challenge = LoginChallenge.objects.select_for_update().filter(pk=found.pk).first()
        now = timezone.now()
        if (
            user is None
            or challenge is None
            or not challenge.is_live(now, max_attempts=max_attempts)
            or not user.is_active
            or not user.totp_enabled
            or challenge.credentials != second_factor.credentials_fingerprint(user)
        ):
            failure = ChallengeExpired()
        else:
            try:
                second_factor.check_budget(user, now, operation="login")
            except TwoFactorThrottled as throttled:  # the challenge's own count untouched
                failure = throttled
            accepted = None if failure else second_factor.accept(user, code, now)
            if failure:
                pass
            elif accepted is None:
                challenge.failed_attempts += 1
                challenge.save(update_fields=["failed_attempts"])
                second_factor.spend_budget(user, now)
                record_event(
                    EventType.LOGIN_FAILED,
                    subject_id=str(user.pk),
                    reason="wrong_otp",
                    attempt=challenge.failed_attempts,
                )
                failure = InvalidLoginCode(max(max_attempts - challenge.failed_attempts, 0))
            else:
                challenge.used_at = now
                challenge.save(update_fields=["used_at"])
                pair = _finish_login(user, (*challenge.amr, AMR_OTP), method="2fa")
    if failure is not None:
        result = (
            "invalid_code"
            if isinstance(failure, InvalidLoginCode)
            else "throttled"
            if isinstance(failure, TwoFactorThrottled)
            else "challenge_expired"
        )
        TWO_FACTOR_VERIFICATIONS.labels(result=result).inc()
        raise failure
    assert pair is not None
    TWO_FACTOR_VERIFICATIONS.labels(result="success").inc()
    tracing.set_attributes({"auth.outcome": "success"})
    return pair
