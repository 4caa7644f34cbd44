from django.apps import AppConfig


class InternalConfig(AppConfig):
    """The internal API. An app (no models) for its management command and system check."""

    name = "auth_backend.internal"
    label = "internal"
    verbose_name = "Internal API"

    def ready(self) -> None:
        # Registers the system check and the OpenAPI extensions (security schemes).
        from django.conf import settings

        from auth_backend.core import openapi  # noqa: F401
        from auth_backend.core.metrics import init_internal_callers
        from auth_backend.internal import checks  # noqa: F401

        # Each configured caller's series starts at 0 (the names are bounded by the setting).
        init_internal_callers(entry.caller for entry in settings.INTERNAL_API_KEYS)
