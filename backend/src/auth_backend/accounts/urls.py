"""URLs of the accounts app (mounted under ``/api/auth/`` by auth_backend.urls).

Every path answers with and without the trailing slash (the gateway routes by prefix).
"""

from django.db import transaction
from django.urls import URLPattern, re_path

from auth_backend.accounts import views
from auth_backend.core.urls import route

# Sign-in records LOGIN_FAILED in its own transaction before answering 401; never let
# ATOMIC_REQUESTS wrap these views and roll that event back with the failed request.
_login = transaction.non_atomic_requests(views.LoginView.as_view())
_login_2fa = transaction.non_atomic_requests(views.LoginTwoFactorView.as_view())
# A wrong second-factor code is counted against the account's budget and committed before
# the 400: the same reason.
_2fa_disable = transaction.non_atomic_requests(views.TwoFactorDisableView.as_view())
_2fa_recovery_codes = transaction.non_atomic_requests(views.TwoFactorRecoveryCodesView.as_view())

urlpatterns: list[URLPattern] = [
    route("register", views.RegisterView.as_view(), name="register"),
    # What route() builds, written out: re.escape() would turn "-" into "\-", which the
    # OpenAPI generator keeps in the published path.
    re_path(r"^verify-email/?$", views.VerifyEmailView.as_view(), name="verify-email"),
    re_path(
        r"^resend-verification/?$",
        views.ResendVerificationView.as_view(),
        name="resend-verification",
    ),
    route("login", _login, name="login"),
    route("login/2fa", _login_2fa, name="login-2fa"),
    route("google/login", views.GoogleLoginView.as_view(), name="google-login"),
    route("password/reset", views.PasswordResetView.as_view(), name="password-reset"),
    route(
        "password/reset/confirm",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    route("profile", views.ProfileView.as_view(), name="profile"),
    route("2fa/setup", views.TwoFactorSetupView.as_view(), name="2fa-setup"),
    route("2fa/enable", views.TwoFactorEnableView.as_view(), name="2fa-enable"),
    route("2fa/disable", _2fa_disable, name="2fa-disable"),
    re_path(r"^2fa/recovery-codes/?$", _2fa_recovery_codes, name="2fa-recovery-codes"),
]
