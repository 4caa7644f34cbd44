"""The plugins' copy of Kong's default error messages against the harness's (Kong's own,
kong/pdk/response.lua ``get_http_error_message``): the two packages cannot import each
other, so this is what keeps them from drifting apart."""

from __future__ import annotations

import pytest

from edge_plugins import responses
from kong_harness.pdk.response import HTTP_ERROR_MESSAGES


@pytest.mark.parametrize("status", sorted(responses.KONG_MESSAGES))
def test_plugin_message_is_kongs(status: int) -> None:
    assert responses.KONG_MESSAGES[status] == HTTP_ERROR_MESSAGES[status]
    assert responses.default_message(status) == HTTP_ERROR_MESSAGES[status]


def test_the_statuses_the_plugins_answer_with_kongs_text_are_covered() -> None:
    # edge-rate-limit: the default error_code and Redis down under on_store_failure closed;
    # edge-jwt: too many header lines.
    assert {429, 431, 503} <= set(responses.KONG_MESSAGES)
    assert responses.TOO_MANY_HEADERS_MESSAGE == HTTP_ERROR_MESSAGES[431]


def test_a_status_kong_does_not_name_gets_kongs_generic_text() -> None:
    assert responses.default_message(299) == "The upstream server responded with 299"
