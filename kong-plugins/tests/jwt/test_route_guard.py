"""edge-jwt's route guard: CGI-shaped header names and encoded separators (jwt.route_guard)."""

from __future__ import annotations

import pytest

from edge_plugins.jwt.route_guard import (
    cgi_shaped_header_names,
    has_encoded_separator,
    is_cgi_shaped,
)


@pytest.mark.parametrize(
    "name",
    [
        "SCRIPT_NAME",
        "script_name",
        "Script-Name",
        "SCRIPT-name",
        "PATH_INFO",
        "path-info",
        "Path_Translated",
        "REQUEST_URI",
        "Request-Uri",
        "SCRIPT_URL",
        "redirect_url",
        "REMOTE_USER",
        "Server_Name",
        "X-Original-URL",
        "x_original_url",
        "X-Rewrite-URL",
        "X_Script_Name",
        " script_name ",
    ],
)
def test_cgi_shaped(name: str) -> None:
    assert is_cgi_shaped(name)


@pytest.mark.parametrize(
    "name",
    [
        "Content-Length",
        "content_type",
        "Host",
        "X-Forwarded-Prefix",  # Kong's own, from trusted_ips only
        "X-Forwarded-Path",
        "X-User-Id",  # the identity rule's, not this one
        "Script-Names",
        "X-Path-Info",
        "Authorization",
    ],
)
def test_not_cgi_shaped(name: str) -> None:
    assert not is_cgi_shaped(name)


def test_names_are_kept_as_sent_once_each() -> None:
    names = ["accept", "SCRIPT_NAME", "Script-Name", "SCRIPT_NAME", "x-user-id", "path_info"]
    assert cgi_shaped_header_names(names) == ["SCRIPT_NAME", "Script-Name", "path_info"]


@pytest.mark.parametrize(
    ("uri", "refused"),
    [
        ("/api/auth/login%2F2fa", True),
        ("/api/auth/login%2f2fa", True),
        ("/api/auth/login%5C2fa", True),
        ("/api/auth/login%5c2fa", True),
        ("/api/auth/seller/applications/a%2Fb/decision", True),
        ("/api/auth/login/2fa", False),
        ("/api/auth/login%252F2fa", False),  # decoded once upstream: the text %2F
        ("/api/auth/login%25", False),
        ("/api/auth/a%2", False),
        ("/api/auth/login%3F", False),
        ("", False),
    ],
)
def test_encoded_separator(uri: str, refused: bool) -> None:
    assert has_encoded_separator(uri) is refused
