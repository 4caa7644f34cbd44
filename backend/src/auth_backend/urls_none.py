"""URLconf of a connection on no configured listener (auth_backend.core.listeners): 404."""

# The project's JSON error shape (auth_backend.core.urls).
from auth_backend.core.urls import handler400, handler403, handler404, handler500  # noqa: F401

urlpatterns: list = []
