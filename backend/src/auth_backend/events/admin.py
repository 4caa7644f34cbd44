"""Read-only Django admin for the outbox: see what is waiting, what failed, what went out.

Rows are written by services and published by the relay; editing them by hand would make the
stream disagree with the data, so the admin only lists and shows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from auth_backend.events.models import OutboxEvent


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Published"), ("no", "Waiting")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "yes":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(published_at__isnull=True)
        return None


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["event_type", "subject_id", "occurred_at", "published_at", "attempts", "id"]
    list_filter = [PublishedFilter, "event_type", "occurred_at"]
    search_fields = ["=id", "=subject_id", "event_type"]
    ordering = ["-occurred_at"]
    date_hierarchy = "occurred_at"
    readonly_fields = [
        "id",
        "event_type",
        "subject_id",
        "payload",
        "occurred_at",
        "published_at",
        "attempts",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
