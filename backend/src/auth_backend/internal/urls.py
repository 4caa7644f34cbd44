"""URLs of the internal API (mounted at ``/internal/auth/`` by auth_backend.urls_internal)."""

from django.urls import URLPattern

from auth_backend.core.urls import route
from auth_backend.internal import views

app_name = "internal"

urlpatterns: list[URLPattern] = [
    # Before users/<id>, so "batch" is never read as an id.
    route("users/batch", views.UserBatchView.as_view(), name="users-batch"),
    # Any segment reaches the view, so a malformed id is a clean 400 invalid_id.
    route(r"users/(?P<user_id>[^/]+)", views.UserDetailView.as_view(), name="user-detail"),
    route("validate-token", views.ValidateTokenView.as_view(), name="validate-token"),
    # Lazy and slash-tolerant: a percent-encoded "/" is legal in an address, and the
    # optional trailing slash is not part of it.
    route(r"check-email/(?P<email>.+?)", views.CheckEmailView.as_view(), name="check-email"),
    route("health/ready", views.ReadinessReportView.as_view(), name="health-ready"),
    # The generator enumerates the internal listener's URLconf, not ROOT_URLCONF (public).
    route(
        "schema",
        views.InternalSchemaView.as_view(urlconf="auth_backend.urls_internal"),
        name="schema",
    ),
]
