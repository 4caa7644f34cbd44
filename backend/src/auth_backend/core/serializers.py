"""Base class of request-body serializers: JSON strings stay strings.

DRF's ``CharField`` (and so ``EmailField``, ``URLField``, ...) turns a number into its text:
``{"refresh_token": 5}`` would be read as ``"5"``. The schema says ``string``, and a client
that sends a number has a bug worth telling it about: 400 ``invalid`` with the field named,
like every other validation error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class InputSerializer(serializers.Serializer):
    # No docstring: drf-spectacular would give it to every request body as its description.

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: [serializers.CharField.default_error_messages["invalid"]]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and not field.read_only
                and name in data
                and data[name] is not None
                and not isinstance(data[name], str)
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
