"""Email addresses as accounts know them: one canonical spelling per mailbox.

Two spellings of one mailbox must be one account, and an address must not pass for another
it only looks like. So an address is canonical when (email-validator, syntax only, no DNS):

* the domain is IDNA 2008 with UTS #46 mapping, in its ASCII form: ``example.com`` in
  fullwidth letters (U+FF45 ...), ``EXAMPLE.com`` and ``example.com`` are one domain,
  ``bücher.de`` is stored as ``xn--bcher-kva.de``;
* the local part is ASCII (RFC 5322 atext and dots), compared lower-cased. Internationalised
  local parts (RFC 6531) are refused: their case folding and normalisation are not settled
  between mail systems, and they carry the look-alikes -- U+017F (long s) and U+0131 (dotless
  i), which Django's case-insensitive EmailValidator regex reads as ``s`` and ``i``,
  fullwidth letters, combining marks.

Django-free; :func:`auth_backend.accounts.models.normalize_email` and the serializers'
email field use it.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254


class InvalidAddress(ValueError):
    """Not an address an account can have; ``message`` is ours, safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


NOT_AN_ADDRESS = "Enter a valid email address."
NOT_ASCII = (
    "Use an address whose part before the @ has ASCII letters, digits and . _ + - only "
    "(look-alike characters such as \u017f or \u0131 are not accepted)."
)


def canonical_email(raw: str) -> str:
    """The canonical spelling of ``raw`` (module docstring), or :class:`InvalidAddress`."""
    text = raw.strip()
    local, at, _ = text.rpartition("@")
    if at and not local.isascii():
        raise InvalidAddress(NOT_ASCII)
    try:
        # Syntax and canonical form only, no DNS. test_environment keeps the RFC 6761 ".test"
        # names acceptable as they were before (other special-use names are refused).
        checked = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            test_environment=True,
        )
    except EmailNotValidError:
        raise InvalidAddress(NOT_AN_ADDRESS) from None
    if checked.ascii_local_part is None:  # not with allow_smtputf8=False; never trusted
        raise InvalidAddress(NOT_ASCII)
    canonical = f"{checked.ascii_local_part.lower()}@{checked.ascii_domain.lower()}"
    if len(canonical) > MAX_LENGTH:
        raise InvalidAddress(NOT_AN_ADDRESS)
    return canonical
