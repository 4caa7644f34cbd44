"""RFC 6750 challenges, and the metrics server."""

from __future__ import annotations

import socket
import urllib.request

from edge_plugins import metrics_server
from edge_plugins.jwt import metrics
from edge_plugins.jwt.errors import BearerError, KeysUnavailable, www_authenticate


def test_challenge_without_error_when_no_token() -> None:
    assert www_authenticate("api") == 'Bearer realm="api"'


def test_challenge_per_error_code_reveals_nothing_else() -> None:
    assert www_authenticate("api", BearerError.INVALID_TOKEN) == (
        'Bearer realm="api", error="invalid_token", error_description="The access token is invalid"'
    )
    assert 'error="insufficient_scope"' in www_authenticate("api", BearerError.INSUFFICIENT_SCOPE)
    assert 'error="invalid_request"' in www_authenticate("api", BearerError.INVALID_REQUEST)


def test_realm_is_quoted_safely() -> None:
    assert www_authenticate('a"b\\c') == 'Bearer realm="a\\"b\\\\c"'


def test_keys_unavailable_retry_after_is_at_least_one_second() -> None:
    assert KeysUnavailable(retry_after=0).retry_after == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_server_is_idempotent_and_serves_the_families() -> None:
    # Another test in this process may have started it already: then use that port.
    port = metrics_server._server_port or _free_port()
    metrics_server.start_metrics_server(port)
    metrics_server.start_metrics_server(port)  # no "address in use"
    metrics.record_validation("rejected", "expired")
    metrics.record_jwks_fetch("ok")
    metrics.record_cache_hit("token")
    metrics.observe_verify_seconds(0.001)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    for family in (
        "edge_jwt_validations_total",
        "edge_jwt_jwks_fetches_total",
        "edge_jwt_cache_hits_total",
        "edge_jwt_verify_seconds_bucket",
    ):
        assert family in body
    assert 'edge_jwt_validations_total{reason="expired",result="rejected"}' in body
