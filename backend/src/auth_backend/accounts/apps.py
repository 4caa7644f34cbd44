from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "auth_backend.accounts"
    label = "accounts"
    verbose_name = "Accounts"
