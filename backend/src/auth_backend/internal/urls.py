"""URLs of the internal app (mounted by auth_backend.urls)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
