"""URL helpers shared by the apps."""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, re_path


def route(pattern: str, view: Any, name: str) -> URLPattern:
    """A path that answers with and without a trailing slash (the gateway routes by prefix).

    ``pattern`` is a plain path like ``"password/reset"``; ``<uuid:id>`` style converters
    are not supported here — use a regex group, e.g. ``"users/(?P<user_id>[^/]+)"``.
    """
    body = pattern.strip("/")
    if not any(c in body for c in "()?[]"):
        # Escape only what regex syntax needs ("-" stays readable in the OpenAPI paths).
        body = re.sub(r"([.^$*+{}\\|])", r"\\\1", body)
    return re_path(rf"^{body}/?$", view, name=name)


# Errors Django handles itself answer in the project's JSON error shape; every listener's
# URLconf (auth_backend.urls_*) imports these names.
handler400 = "auth_backend.core.errors.bad_request"
handler403 = "auth_backend.core.errors.permission_denied"
handler404 = "auth_backend.core.errors.page_not_found"
handler500 = "auth_backend.core.errors.server_error"
