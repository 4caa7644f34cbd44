"""URLs of the tokens app (mounted under ``/api/auth/`` by auth_backend.urls)."""

from django.urls import URLPattern, re_path

from auth_backend.core.urls import route
from auth_backend.tokens import views

urlpatterns: list[URLPattern] = [
    route("token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    route("logout", views.LogoutView.as_view(), name="logout"),
    # What route() builds, written out: re.escape() would turn "-" into "\-", which the
    # OpenAPI generator keeps in the published path (it only unescapes "\.").
    re_path(r"^\.well-known/jwks\.json/?$", views.JwksView.as_view(), name="jwks"),
]
