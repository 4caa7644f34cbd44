"""The backend's error envelope (auth_backend.core.errors), as the tests check it."""

from __future__ import annotations

from typing import Any


def assert_error_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    """``response`` is ``status`` with the envelope's exact keys and error ``code``."""
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["request_id"] == response["X-Request-ID"]
    return body
