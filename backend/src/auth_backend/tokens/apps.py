from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "auth_backend.tokens"
    label = "tokens"
