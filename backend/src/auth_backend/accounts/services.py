"""Account business rules: registration, email verification, sign-in, 2FA, password reset.

Secrets handled here and how:

* One-time tokens (email verification 24 h, password reset 1 h) and 2FA login challenges
  (5 min) are ``secrets.token_urlsafe(32)``; only their SHA-256 is stored and they are
  found by hash lookup (a 256-bit random value: the index lookup leaks nothing usable).
  Single use is a conditional ``UPDATE … WHERE used_at IS NULL`` that only one caller can
  win, on any database.
* Passwords: Argon2id (``PASSWORD_HASHERS``). A login for an unknown email — or an account
  without a usable password — verifies against a dummy Argon2 hash, so the answer takes as
  long as for a wrong password and is the same 401 ``invalid_credentials``.
* TOTP codes (RFC 6238, ±1 step): the accepted time step is stored in
  ``User.last_totp_step`` under a row lock, and a code of that step or an earlier one is
  refused, so a code works once. The secret is stored as is (authenticator apps need it;
  the database is the trust boundary, as for the Fernet-wrapped signing keys' SECRET_KEY).

Events go to the outbox inside the transaction of the change (a rollback emits nothing),
except ``LOGIN_FAILED``: a failed sign-in changes nothing, so its event is committed in a
transaction of its own before the error is raised. The login views opt out of
``ATOMIC_REQUESTS`` so that stays true even if a deployment turns it on.

Emails are sent after the transaction that created their token committed, by
:mod:`~auth_backend.accounts.background`: what only an existing account costs never shows in
the response time of ``register``, ``resend-verification`` or ``password/reset``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_backend.accounts import background, emails, throttling, totp
from auth_backend.accounts.exceptions import (
    ChallengeExpired,
    EmailNotVerified,
    InvalidCredentials,
    InvalidLoginCode,
    InvalidOneTimeToken,
    InvalidTwoFactorCode,
    LoginThrottled,
    TwoFactorAlreadyEnabled,
    TwoFactorNotEnabled,
    TwoFactorSetupRequired,
)
from auth_backend.accounts.models import (
    LoginChallenge,
    OneTimeToken,
    TokenPurpose,
    User,
    normalize_email,
)
from auth_backend.accounts.selectors import (
    last_email_sent_at,
    login_challenge_by_hash,
    one_time_token_by_hash,
    user_by_email,
)
from auth_backend.core import tracing
from auth_backend.core.metrics import (
    EMAIL_VERIFICATIONS,
    LOGIN_DURATION,
    LOGIN_FAILURES,
    LOGINS,
    REGISTRATIONS,
    TWO_FACTOR_CHALLENGES,
    TWO_FACTOR_VERIFICATIONS,
)
from auth_backend.events.services import EventType, record_event
from auth_backend.tokens.services import TokenPair, issue_token_pair, revoke_all_for_user

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything much longer is not ours (cheap early reject).
MAX_TOKEN_LENGTH = 128
AMR_PASSWORD = "pwd"  # noqa: S105 - an RFC 8176 method name
AMR_OTP = "otp"
PROFILE_WRITABLE_FIELDS = ("first_name", "last_name", "bio", "avatar_url", "language")


# --- secrets ---------------------------------------------------------------------------------


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 (the raw value is never stored)."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    return raw, hash_token(raw)


def _plausible_token(raw: object) -> bool:
    return isinstance(raw, str) and 0 < len(raw) <= MAX_TOKEN_LENGTH


@functools.cache
def _dummy_password_hash() -> str:
    return make_password(secrets.token_urlsafe(16))


def _spend_password_check_time(password: str) -> None:
    """Verify against a dummy Argon2 hash: as slow as checking a real password."""
    check_password(password, _dummy_password_hash())


def _validate_new_password(password: str, user: User) -> None:
    """Django's password validators; errors under the ``password`` field."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise DjangoValidationError({"password": exc.error_list}) from None


def _lock_user(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


# --- one-time tokens (email verification, password reset) ------------------------------------


def _token_ttl(purpose: TokenPurpose) -> timedelta:
    if purpose == TokenPurpose.VERIFY_EMAIL:
        return timedelta(seconds=settings.EMAIL_VERIFICATION_TOKEN_TTL_SECONDS)
    return timedelta(seconds=settings.PASSWORD_RESET_TOKEN_TTL_SECONDS)


def _issue_one_time_token(user: User, purpose: TokenPurpose, now: datetime) -> str:
    """A new token of ``purpose`` for ``user``; outstanding ones of that purpose stop working.

    Only the newest email works: an older one lying in a mailbox is worth nothing.
    """
    OneTimeToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).delete()
    raw, digest = _new_token()
    OneTimeToken.objects.create(
        user=user,
        purpose=purpose,
        token_hash=digest,
        created_at=now,
        expires_at=now + _token_ttl(purpose),
    )
    return raw


def _issue_one_time_token_rate_limited(user: User, purpose: TokenPurpose) -> str | None:
    """Like :func:`_issue_one_time_token`, unless one was mailed less than a minute ago.

    The user row lock serializes concurrent requests for one address, so two of them cannot
    both see "nothing sent recently" (PostgreSQL; SQLite serializes writers anyway).
    """
    with transaction.atomic():
        locked = _lock_user(user)
        now = timezone.now()
        last = last_email_sent_at(locked, purpose)
        interval = timedelta(seconds=settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS)
        if last is not None and now - last < interval:
            return None
        return _issue_one_time_token(locked, purpose, now)


def _usable_one_time_token(raw: object, purpose: TokenPurpose) -> OneTimeToken:
    """The unused, unexpired token row for ``raw``; :class:`InvalidOneTimeToken` otherwise."""
    if not _plausible_token(raw):
        raise InvalidOneTimeToken()
    token = one_time_token_by_hash(hash_token(str(raw)), purpose)
    if token is None or not token.is_usable(timezone.now()):
        raise InvalidOneTimeToken()
    return token


def _claim_one_time_token(token: OneTimeToken) -> datetime:
    """Mark ``token`` used; exactly one concurrent caller wins, the others get 400.

    Call inside the transaction of the change the token authorises, so a failure after the
    claim gives the token back.
    """
    now = timezone.now()
    claimed = OneTimeToken.objects.filter(
        pk=token.pk, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if claimed != 1:
        raise InvalidOneTimeToken()
    token.used_at = now
    return now


# --- registration and email verification -----------------------------------------------------


def register_user(
    *, email: str, password: str, first_name: str = "", last_name: str = ""
) -> User | None:
    """Create an unverified account and mail it a verification token; ``None`` if the address
    already has an account, whose owner is mailed a notice instead.

    The caller answers the same either way (OWASP Authentication Cheat Sheet: account
    enumeration), and both ways cost the same: the password rules and Argon2, one insert
    attempt, and an email handed to :mod:`~auth_backend.accounts.background`. Duplicates
    (case-insensitive) are refused by the database's unique constraint, not by a prior
    lookup: of any number of concurrent registrations for one address exactly one creates
    the account. The existing account is left exactly as it was.
    """
    user = User(email=normalize_email(email), first_name=first_name, last_name=last_name)
    try:
        _validate_new_password(password, user)
    except DjangoValidationError:
        REGISTRATIONS.labels(outcome="invalid_password").inc()
        raise
    user.set_password(password)  # Argon2 before the transaction: no lock held meanwhile
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            raw = _issue_one_time_token(user, TokenPurpose.VERIFY_EMAIL, timezone.now())
            record_event(EventType.USER_REGISTERED, subject_id=str(user.pk), method="password")
    except IntegrityError:
        if user_by_email(user.email) is None:
            raise  # some other constraint: a bug, not a duplicate
        REGISTRATIONS.labels(outcome="existing_email").inc()
        background.submit(send_registration_notice, user.email)
        return None
    REGISTRATIONS.labels(outcome="created").inc()
    background.submit(emails.send_verification_email, user, raw)
    return user


def send_registration_notice(email: str) -> None:
    """Tell the owner of ``email`` that someone tried to register it (a background job).

    At most one notice per address per ``ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS``: repeated
    attempts cannot flood the owner's mailbox. Nothing is sent for a deactivated account.
    """
    user = user_by_email(email)
    if user is None or not user.is_active:
        return
    interval = timedelta(seconds=settings.ACCOUNT_EMAIL_MIN_INTERVAL_SECONDS)
    with transaction.atomic():
        locked = _lock_user(user)
        now = timezone.now()
        last = locked.registration_notice_sent_at
        if last is not None and now - last < interval:
            return
        User.objects.filter(pk=locked.pk).update(registration_notice_sent_at=now)
    emails.send_registration_notice_email(locked)


def verify_email(token: str) -> User:
    """Consume a verification token and mark the address verified (``EMAIL_VERIFIED``)."""
    try:
        row = _usable_one_time_token(token, TokenPurpose.VERIFY_EMAIL)
        with transaction.atomic():
            now = _claim_one_time_token(row)
            newly = User.objects.filter(pk=row.user_id, email_verified_at__isnull=True).update(
                email_verified_at=now
            )
            if newly:
                record_event(EventType.EMAIL_VERIFIED, subject_id=str(row.user_id))
    except InvalidOneTimeToken:
        EMAIL_VERIFICATIONS.labels(result="invalid_token").inc()
        raise
    EMAIL_VERIFICATIONS.labels(result="verified" if newly else "already_verified").inc()
    return User.objects.get(pk=row.user_id)


def resend_verification(email: str) -> None:
    """Mail a new verification token if the address has an active, unverified account.

    Silent in every other case (unknown, verified, inactive, rate-limited): the caller
    answers the same either way, and in the same time -- the lookup and the email are a
    background job (:func:`send_verification_again`), so nothing can be learned about the
    address.
    """
    background.submit(send_verification_again, normalize_email(email))


def send_verification_again(email: str) -> None:
    """The work of :func:`resend_verification`, off the request."""
    user = user_by_email(email)
    if user is None or user.email_verified or not user.is_active:
        return
    raw = _issue_one_time_token_rate_limited(user, TokenPurpose.VERIFY_EMAIL)
    if raw is not None:
        emails.send_verification_email(user, raw)


# --- password reset --------------------------------------------------------------------------


def request_password_reset(email: str) -> None:
    """Mail a reset token to an active account's address; silent otherwise (like resend).

    Same work for every address in the request: the job (:func:`send_password_reset`) is
    handed to the background worker, which looks the address up.
    """
    background.submit(send_password_reset, normalize_email(email))


def send_password_reset(email: str) -> None:
    """The work of :func:`request_password_reset`, off the request."""
    user = user_by_email(email)
    if user is None or not user.is_active:
        return
    raw = _issue_one_time_token_rate_limited(user, TokenPurpose.PASSWORD_RESET)
    if raw is not None:
        emails.send_password_reset_email(user, raw)


def confirm_password_reset(*, token: str, new_password: str) -> User:
    """Set a new password with a reset token, and end every session of the account.

    The token proved control of the mailbox, so the address counts as verified too (this
    also takes over an account someone else pre-registered with the address). Every refresh
    family is revoked and the edge told to drop the access tokens (``password_reset``).
    """
    row = _usable_one_time_token(token, TokenPurpose.PASSWORD_RESET)
    user = row.user
    if not user.is_active:
        raise InvalidOneTimeToken()
    _validate_new_password(new_password, user)
    user.set_password(new_password)  # hash before taking locks
    with transaction.atomic():
        now = _claim_one_time_token(row)
        locked = _lock_user(user)
        locked.password = user.password
        fields = ["password"]
        if locked.email_verified_at is None:
            locked.email_verified_at = now
            fields.append("email_verified_at")
        locked.save(update_fields=fields)
        OneTimeToken.objects.filter(
            user=locked, purpose=TokenPurpose.PASSWORD_RESET, used_at__isnull=True
        ).delete()
        revoke_all_for_user(locked, reason="password_reset")
        record_event(EventType.PASSWORD_RESET, subject_id=str(locked.pk))
    return locked


# --- sign-in ---------------------------------------------------------------------------------


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
        _spend_password_check_time(password)
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
    raw, digest = _new_token()
    now = timezone.now()
    LoginChallenge.objects.create(
        user=user,
        token_hash=digest,
        amr=list(amr),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.LOGIN_CHALLENGE_TTL_SECONDS),
    )
    TWO_FACTOR_CHALLENGES.inc()
    return raw


def _accept_totp_code(user: User, code: str) -> int | None:
    """The step of a valid, not yet used code for the (locked) user's secret, else ``None``."""
    step = totp.matching_step(user.totp_secret, code)
    if step is None:
        return None
    if user.last_totp_step is not None and step <= user.last_totp_step:
        return None  # replay: this code (or a later one) was already accepted
    return step


@tracing.traced("accounts.login", **{"auth.method": "otp"})
def complete_two_factor_login(*, challenge_token: str, code: str) -> TokenPair:
    """Finish a sign-in with a TOTP code.

    Unknown, expired, used or exhausted challenge: 401 :class:`ChallengeExpired`. A wrong
    or replayed code: 401 :class:`InvalidLoginCode`, and the challenge's failure counter is
    committed before the error is raised, so the limit holds across requests.
    """
    if not _plausible_token(challenge_token):
        TWO_FACTOR_VERIFICATIONS.labels(result="challenge_expired").inc()
        raise ChallengeExpired()
    found = login_challenge_by_hash(hash_token(challenge_token))
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
        ):
            failure = ChallengeExpired()
        else:
            step = _accept_totp_code(user, code)
            if step is None:
                challenge.failed_attempts += 1
                challenge.save(update_fields=["failed_attempts"])
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
                user.last_totp_step = step
                user.save(update_fields=["last_totp_step"])
                pair = _finish_login(user, (*challenge.amr, AMR_OTP), method="2fa")
    if failure is not None:
        TWO_FACTOR_VERIFICATIONS.labels(
            result="invalid_code" if isinstance(failure, InvalidLoginCode) else "challenge_expired"
        ).inc()
        raise failure
    assert pair is not None
    TWO_FACTOR_VERIFICATIONS.labels(result="success").inc()
    tracing.set_attributes({"auth.outcome": "success"})
    return pair


# --- two-factor setup ------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoFactorSetup:
    secret: str
    otpauth_uri: str


def start_two_factor_setup(user: User) -> TwoFactorSetup:
    """Store a new pending TOTP secret (2FA stays off until :func:`enable_two_factor`).

    Refused while 2FA is on: replacing the active secret would lock the user out of their
    authenticator. Calling it again replaces the pending secret.
    """
    with transaction.atomic():
        locked = _lock_user(user)
        if locked.totp_enabled:
            raise TwoFactorAlreadyEnabled()
        locked.totp_secret = totp.new_secret()
        locked.last_totp_step = None  # steps are per secret
        locked.save(update_fields=["totp_secret", "last_totp_step"])
    return TwoFactorSetup(
        secret=locked.totp_secret,
        otpauth_uri=totp.provisioning_uri(
            locked.totp_secret, account_name=locked.email, issuer=settings.TOTP_ISSUER
        ),
    )


def enable_two_factor(user: User, *, code: str) -> User:
    """Turn 2FA on with a code from the pending secret (proves the app has it)."""
    with transaction.atomic():
        locked = _lock_user(user)
        if locked.totp_enabled:
            raise TwoFactorAlreadyEnabled()
        if not locked.totp_secret:
            raise TwoFactorSetupRequired()
        step = _accept_totp_code(locked, code)
        if step is None:
            raise InvalidTwoFactorCode()
        locked.totp_enabled = True
        locked.last_totp_step = step
        locked.save(update_fields=["totp_enabled", "last_totp_step"])
        record_event(EventType.TWO_FACTOR_ENABLED, subject_id=str(locked.pk))
    return locked


def disable_two_factor(user: User, *, code: str) -> User:
    """Turn 2FA off with a current code; the secret is discarded."""
    with transaction.atomic():
        locked = _lock_user(user)
        if not locked.totp_enabled:
            raise TwoFactorNotEnabled()
        step = _accept_totp_code(locked, code)
        if step is None:
            raise InvalidTwoFactorCode()
        locked.totp_enabled = False
        locked.totp_secret = ""
        locked.last_totp_step = step
        locked.save(update_fields=["totp_enabled", "totp_secret", "last_totp_step"])
        record_event(EventType.TWO_FACTOR_DISABLED, subject_id=str(locked.pk))
    return locked


# --- profile ---------------------------------------------------------------------------------


def update_profile(user: User, **changes: Any) -> User:
    """Write whitelisted profile fields (the serializer already rejected everything else)."""
    unexpected = set(changes) - set(PROFILE_WRITABLE_FIELDS)
    if unexpected:
        raise ValueError(f"not writable: {sorted(unexpected)}")
    if changes:
        for name, value in changes.items():
            setattr(user, name, value)
        user.save(update_fields=list(changes))
    return user
