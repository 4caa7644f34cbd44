from django.apps import AppConfig


class InternalConfig(AppConfig):
    """The internal API. An app (no models) for its management command and system check."""

    name = "auth_backend.internal"
    label = "internal"
    verbose_name = "Internal API"

    def ready(self) -> None:
        # Registers the system check and the OpenAPI extensions (security schemes).
        from auth_backend.core import openapi  # noqa: F401
        from auth_backend.internal import checks  # noqa: F401
