"""nginx's ``client_max_body_size`` as Kong runs it (kong.conf
``nginx_http_client_max_body_size``, ``nginx_proxy_client_max_body_size``).

Kong 3.9.3: kong/templates/kong_defaults.lua (default 0: no limit), nginx_kong.lua (the
``nginx_http_*`` directives injected into the http block, ``nginx_proxy_*`` into the proxy
server; ``error_page 413 /kong_error_handler``), kong/error_handlers.lua ("Payload too
large"). A declared Content-Length over the limit is refused when nginx picks the location,
before the rewrite and access phases: no plugin runs. A chunked body is read, and found too
large, only when the request is proxied: the plugins run, the upstream is never contacted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness_test_support import demo_route_yml

LIMIT = ("nginx_http_client_max_body_size = 1k",)


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 256):
        yield b"x" * 256


def test_content_length_over_the_limit_is_413_before_any_plugin(
    harness_factory,
    upstream,  # type: ignore[no-untyped-def]
) -> None:
    gw = harness_factory(demo_route_yml(upstream.port), conf_lines=LIMIT)
    before = len(upstream.requests)
    with gw.client() as client:
        del client.headers["Accept"]
        at_limit = client.post("/p", content=b"x" * 1024)
        over = client.post("/p", content=b"x" * 1025)
        as_json = client.post(
            "/p", content=b"x" * 4096, headers={"Content-Type": "application/json"}
        )
    assert at_limit.status_code == 200, at_limit.text
    assert len(upstream.requests) == before + 1
    assert over.status_code == 413
    rid = over.headers["x-kong-request-id"]
    assert over.text == f"Payload too large\nrequest_id: {rid}\n"
    assert over.headers["content-type"] == "text/plain; charset=utf-8"
    assert over.headers["connection"] == "close"
    assert over.headers["server"].startswith("kong/")
    assert "x-edge-demo" not in over.headers  # no plugin ran
    assert as_json.status_code == 413
    rid = as_json.headers["x-kong-request-id"]
    assert as_json.json() == {"message": "Payload too large", "request_id": rid}
    assert len(upstream.requests) == before + 1


def test_chunked_body_over_the_limit_runs_the_plugins_but_never_the_upstream(
    harness_factory,
    upstream,  # type: ignore[no-untyped-def]
) -> None:
    gw = harness_factory(demo_route_yml(upstream.port), conf_lines=LIMIT)
    before = len(upstream.requests)
    with gw.client() as client:
        small = client.post("/p", content=_chunks(512))
        over = client.post("/p", content=_chunks(2048), headers={"Accept": "application/json"})
    assert small.status_code == 200, small.text
    assert over.status_code == 413
    assert over.json()["message"] == "Payload too large"
    assert over.headers["connection"] == "close"
    assert len(upstream.requests) == before + 1


def test_no_limit_by_default(harness_factory, upstream) -> None:  # type: ignore[no-untyped-def]
    """Kong's own default is 0: a large body is proxied."""
    gw = harness_factory(demo_route_yml(upstream.port))
    with gw.client() as client:
        response = client.post("/p", content=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (("nginx_proxy_client_max_body_size = 2k", "nginx_http_client_max_body_size = 1k"), 200),
        (("nginx_http_client_max_body_size = 1k",), 413),
        (("nginx_http_client_max_body_size = 0",), 200),
    ],
)
def test_proxy_block_setting_wins_over_the_http_block(
    harness_factory,
    upstream,  # type: ignore[no-untyped-def]
    lines: tuple[str, ...],
    status: int,
) -> None:
    gw = harness_factory(demo_route_yml(upstream.port), conf_lines=lines)
    with gw.client() as client:
        assert client.post("/p", content=b"x" * 1536).status_code == status
