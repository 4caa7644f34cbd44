"""Django admin for users: find, inspect, deactivate, grant staff.

What the admin deliberately cannot do:

* see or type a password: the change form shows the Argon2 hash read-only with a link to
  Django's "change password" form, which validates and hashes (the add form does too);
* see the TOTP secret, or switch 2FA, verification, Google link or seller status by hand:
  those have their own flows (2FA endpoints, verify-email, Google sign-in, seller
  applications with their audit trail).

Deactivating a user here ends all of their sessions (refresh families revoked, access tokens
announced to the edge), as deactivation must.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.db import transaction
from django.http import HttpRequest

from auth_backend.accounts.models import User, normalize_email
from auth_backend.tokens.services.revoking import RevokeReason, revoke_all_for_user


class _NormalizedEmailMixin:
    """Store emails lower-cased, as the API does (the unique constraint is on lower(email))."""

    cleaned_data: dict[str, Any]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


class UserCreationAdminForm(_NormalizedEmailMixin, BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeAdminForm(_NormalizedEmailMixin, UserChangeForm):
    class Meta:
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm

    list_display = [
        "email",
        "first_name",
        "last_name",
        "is_active",
        "email_verified",
        "totp_enabled",
        "is_seller",
        "is_staff",
        "date_joined",
    ]
    list_filter = [
        "is_active",
        "is_staff",
        "is_seller",
        "totp_enabled",
        ("email_verified_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["email", "first_name", "last_name"]
    ordering = ["-date_joined"]
    readonly_fields = [
        "id",
        "email_verified_at",
        "google_sub",
        "totp_enabled",
        "is_seller",
        "last_login",
        "date_joined",
    ]
    fieldsets = [
        (None, {"fields": ["id", "email", "password"]}),
        ("Profile", {"fields": ["first_name", "last_name", "bio", "avatar_url", "language"]}),
        (
            "Status",
            {
                "fields": [
                    "is_active",
                    "email_verified_at",
                    "google_sub",
                    "totp_enabled",
                    "is_seller",
                ]
            },
        ),
        ("Staff", {"fields": ["is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),
    ]
    filter_horizontal = ["groups", "user_permissions"]

    @admin.display(boolean=True, description="email verified", ordering="email_verified_at")
    def email_verified(self, obj: User) -> bool:
        return obj.email_verified

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        deactivated = change and "is_active" in form.changed_data and not obj.is_active
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if deactivated:
                revoke_all_for_user(obj, reason=RevokeReason.DEACTIVATION)
