from django.apps import AppConfig


class SellersConfig(AppConfig):
    name = "auth_backend.sellers"
    label = "sellers"
