from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "auth_backend.health"
    label = "health"
    verbose_name = "Health checks"
