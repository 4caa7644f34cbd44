from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "auth_backend.events"
    label = "events"
