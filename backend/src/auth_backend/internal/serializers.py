"""Input and output shapes of the internal API, and user-id parsing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from auth_backend.accounts.models import Role, User
from auth_backend.internal.exceptions import InvalidUserId, TooManyIds

MAX_BATCH_IDS = 100


def parse_user_id(value: Any) -> uuid.UUID:
    """A user id as sent by a caller -> ``UUID``; anything else is 400 ``invalid_id``.

    Accepts the forms ``uuid.UUID`` accepts (any case, with or without hyphens/braces);
    responses always use the canonical lower-case hyphenated form.
    """
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidUserId([value])


def parse_user_ids(values: Sequence[Any]) -> list[uuid.UUID]:
    """Validate a batch: at most ``MAX_BATCH_IDS`` entries, all UUIDs; de-duplicated in order.

    Raises :class:`TooManyIds` (checked first, on the raw count) or :class:`InvalidUserId`
    listing every malformed entry as sent.
    """
    if len(values) > MAX_BATCH_IDS:
        raise TooManyIds(received=len(values), max_ids=MAX_BATCH_IDS)
    parsed: dict[uuid.UUID, None] = {}
    invalid: list[Any] = []
    for value in values:
        try:
            parsed.setdefault(parse_user_id(value), None)
        except InvalidUserId:
            invalid.append(value)
    if invalid:
        raise InvalidUserId(invalid)
    return list(parsed)


class InternalUserSerializer(serializers.ModelSerializer):
    """What other services may know about an account."""

    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), read_only=True
    )
    email_verified = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "roles",
            "is_active",
            "email_verified",
            "is_seller",
            "date_joined",
        ]
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "maxItems": MAX_BATCH_IDS,
    }
)
class _RawIdListField(serializers.ListField):
    """A JSON array of anything; the entries are checked by :func:`parse_user_ids` so the
    error can list every malformed value in one ``invalid_id`` answer."""


class UserBatchRequestSerializer(serializers.Serializer):
    ids = _RawIdListField(
        help_text=f"User ids (UUIDs), at most {MAX_BATCH_IDS}; duplicates are looked up once."
    )


class UserBatchResponseSerializer(serializers.Serializer):
    users = InternalUserSerializer(many=True, help_text="Found users, in request order.")
    missing = serializers.ListField(
        child=serializers.UUIDField(), help_text="Requested ids with no account, in request order."
    )


class _StrictCharField(serializers.CharField):
    """A JSON string only (DRF's CharField would also take numbers and stringify them)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ValidateTokenRequestSerializer(serializers.Serializer):
    token = _StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text="An access token (JWT) as presented by a client.",
    )


class IntrospectionSerializer(serializers.Serializer):
    """RFC 7662-style answer; when ``active`` is false no other member is present."""

    active = serializers.BooleanField()
    sub = serializers.UUIDField(required=False, help_text="User id.")
    email = serializers.EmailField(required=False)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False
    )
    scope = serializers.CharField(required=False, help_text="Space-separated scopes.")
    exp = serializers.IntegerField(required=False, help_text="Expiry, seconds since the epoch.")
    jti = serializers.CharField(required=False, help_text="Token id.")


class CheckEmailSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class EmailExistsSerializer(serializers.Serializer):
    exists = serializers.BooleanField()
