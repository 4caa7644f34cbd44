"""System checks of the internal API (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def internal_api_keys_configured(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if settings.INTERNAL_API_KEYS:
        return []
    return [
        checks.Warning(
            "INTERNAL_API_KEYS is empty: every /internal/auth/ request will be refused with 401.",
            hint="Create a key per calling service with `manage.py hash_api_key <caller>` and "
            "set INTERNAL_API_KEYS=caller:sha256hex,...",
            id="internal.W001",
        )
    ]
