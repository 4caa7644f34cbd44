"""Token business rules, one module per concept; callers import the module they need.

* :mod:`.issuing` — starting a session: the token pair, what an access token claims and
  how refresh tokens are made and stored;
* :mod:`.rotation` — exchanging a refresh token for a new pair, and reuse detection;
* :mod:`.revoking` — ending sessions: logout, one session, every session of a user;
* :mod:`.validation` — checking an access token as the edge would, plus the database;
* :mod:`.purge` — deleting bookkeeping that can no longer matter.

The errors are in :mod:`auth_backend.tokens.exceptions`.

Access token
    JWT signed with the current signing key (RS256 by default), ``kid`` in the header.
    Claims: ``iss`` (``JWT_ISSUER``), ``aud`` (``JWT_AUDIENCE``), ``sub`` (user UUID),
    ``email``, ``roles`` (``["user", "seller"?, "staff"?]``), ``scope`` (space separated:
    ``profile`` for everyone, plus ``seller`` for sellers), ``jti`` (UUID), ``sid`` (the
    refresh family = sign-in session), ``iat``, ``nbf`` (= ``iat``), ``exp`` (``iat`` +
    ``ACCESS_TOKEN_TTL_SECONDS``), ``token_use: "access"``, ``amr`` (RFC 8176 methods of the
    login: ``["pwd"]``, ``["pwd", "otp"]``, ``["google"]``, ...). Every issued ``jti`` is
    recorded with its family so a revocation can name it (``docs/revocation.md``).

Refresh token
    Opaque ``secrets.token_urlsafe(32)``; only its SHA-256 is stored. Each use rotates it:
    the presented token is marked used and a successor in the same family is returned with a
    new access token. Presenting a used token again is reuse — someone else holds a copy —
    so the whole family is revoked. Rotations of one family serialize on a row lock of the
    family, so two concurrent uses of the same token give exactly one success; the other is
    reuse. Refresh tokens expire ``REFRESH_TOKEN_TTL_SECONDS`` after they were issued (a
    sliding window: each rotation starts a new one).
"""
