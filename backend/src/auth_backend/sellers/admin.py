"""Django admin for seller applications: review, filter, and approve/reject.

Decisions go through :func:`auth_backend.sellers.services.decide_application` -- the same
function as the API -- so the transition row and the outbox event are recorded with the
logged-in staff member as actor. Applications are never edited or deleted by hand here:
the audit trail must stay true.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from auth_backend.accounts.models import User
from auth_backend.sellers.exceptions import SellerApplicationError
from auth_backend.sellers.models import SellerApplication, SellerApplicationTransition
from auth_backend.sellers.services import Decision, decide_application


class TransitionInline(admin.TabularInline):
    model = SellerApplicationTransition
    readonly_fields = ("at", "from_status", "to_status", "actor", "note")
    fields = readonly_fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SellerApplication)
class SellerApplicationAdmin(admin.ModelAdmin):
    list_display = [
        "business_name",
        "user",
        "seller_type",
        "status",
        "submitted_at",
        "decided_at",
        "decided_by",
    ]
    list_filter = ["status", "seller_type", "submitted_at", "decided_at"]
    search_fields = ["business_name", "user__email"]
    date_hierarchy = "submitted_at"
    list_select_related = ["user", "decided_by"]
    ordering = ["-submitted_at"]
    readonly_fields = [
        "id",
        "user",
        "business_name",
        "seller_type",
        "motivation",
        "portfolio_url",
        "status",
        "submitted_at",
        "decided_at",
        "decided_by",
        "decision_note",
    ]
    inlines = [TransitionInline]
    actions = ["approve_selected", "reject_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Approve selected pending applications", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide(request, queryset, Decision.APPROVE)

    @admin.action(description="Reject selected pending applications", permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide(request, queryset, Decision.REJECT)

    def _decide(self, request: HttpRequest, queryset: QuerySet, decision: Decision) -> None:
        """Decide each selected application on its own: one refusal does not undo the rest."""
        # AdminSite.admin_view lets only active staff users reach an action.
        actor = request.user
        assert isinstance(actor, User)
        done, refused = 0, []
        for application_id, name in queryset.values_list("pk", "business_name"):
            try:
                decide_application(application_id=application_id, actor=actor, decision=decision)
            except SellerApplicationError as exc:
                refused.append(f"{name}: {exc.detail}")
            else:
                done += 1
        if done:
            verb = "approved" if decision is Decision.APPROVE else "rejected"
            self.message_user(request, f"{done} application(s) {verb}.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)
