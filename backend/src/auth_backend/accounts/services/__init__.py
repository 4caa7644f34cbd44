"""Account business rules, one module per concept; callers import the module they need.

* :mod:`.registration` — ``register`` and the notice to an address that already has an
  account;
* :mod:`.verification` — ``verify-email`` and ``resend-verification``;
* :mod:`.passwords` — the password rules, password reset and the dummy Argon2 check;
* :mod:`.sign_in` — password sign-in, the 2FA login challenge and ``login/2fa``;
* :mod:`.google` — sign-in with a Google ID token;
* :mod:`.two_factor` — TOTP setup, enabling and disabling, recovery-code regeneration;
* :mod:`.second_factor` — TOTP and recovery codes under one per-account budget of wrong
  codes, and ending pending login challenges;
* :mod:`.profile` — the writable profile fields;
* :mod:`.one_time_tokens` — the random tokens mailed or handed out, stored as hashes.

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
