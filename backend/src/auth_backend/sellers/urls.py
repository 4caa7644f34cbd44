"""URLs of the sellers app (mounted at ``/api/auth/seller/`` by auth_backend.urls)."""

from auth_backend.core.urls import route
from auth_backend.sellers.views import SellerApplyView, SellerDecisionView, SellerStatusView

app_name = "sellers"

urlpatterns = [
    route("apply", SellerApplyView.as_view(), name="apply"),
    route("status", SellerStatusView.as_view(), name="status"),
    # Any segment reaches the view, so a malformed id is a clean 404 rather than no route.
    route(
        r"applications/(?P<application_id>[^/]+)/decision",
        SellerDecisionView.as_view(),
        name="decision",
    ),
]
