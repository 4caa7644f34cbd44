"""Errors of the internal API, rendered in the project's error shape (core.errors)."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, AuthenticationFailed


class InvalidApiKey(AuthenticationFailed):
    """An ``Authorization`` header that is not ``Bearer <configured key>``.

    Malformed headers, other schemes (``Basic``, ...) and unknown keys are deliberately
    indistinguishable.
    """

    default_code = "invalid_api_key"
    default_detail = "The API key is invalid."


class InvalidUserId(APIException):
    """One or more user ids are not UUIDs; ``details.invalid_ids`` lists them as sent."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_id"
    default_detail = "User ids must be UUIDs."

    def __init__(self, invalid_ids: list[Any]) -> None:
        super().__init__()
        self.details = {"invalid_ids": invalid_ids}


class TooManyIds(APIException):
    """A batch lookup asked for more ids than one request may carry."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "too_many_ids"
    default_detail = "Too many ids in one request."

    def __init__(self, *, received: int, max_ids: int) -> None:
        super().__init__()
        self.details = {"max_ids": max_ids, "received": received}
