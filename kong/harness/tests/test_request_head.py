"""kong_harness.request_head: the request heads nginx refuses before Kong runs.

End to end (a pipelined request behind each shape, nothing proxied):
tests/security/test_smuggling.py.
"""

from __future__ import annotations

import pytest

from kong_harness.request_head import error_reply, refusal

POST = b"POST /p HTTP/1.1\r\nHost: h\r\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(POST + b"Content-Length: 5", None, id="content-length"),
        pytest.param(POST + b"Transfer-Encoding: chunked", None, id="chunked"),
        pytest.param(POST + b"Transfer-Encoding: Chunked", None, id="chunked-any-case"),
        pytest.param(POST + b"X-A: b\r\nX-C: d", None, id="plain-headers"),
        pytest.param(b"\r\n" + POST + b"Content-Length: 5", None, id="leading-empty-line"),
        pytest.param(POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked", 400, id="cl-te"),
        pytest.param(POST + b"Transfer-Encoding: chunked\r\ncontent-length: 5", 400, id="te-cl"),
        pytest.param(POST + b"Content-Length: 5\r\nContent-Length: 5", 400, id="cl-twice"),
        pytest.param(POST + b"Content-Length: 5, 5", 400, id="cl-list"),
        pytest.param(POST + b"Content-Length: -1", 400, id="cl-negative"),
        pytest.param(POST + b"X-A: b\r\n c", 400, id="obs-fold-space"),
        pytest.param(POST + b"X-A: b\r\n\tc", 400, id="obs-fold-tab"),
        pytest.param(POST + b"Host: other", 400, id="host-twice"),
        pytest.param(b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked", 400, id="te-http10"),
        pytest.param(POST + b"Transfer-Encoding: gzip, chunked", 501, id="te-unknown"),
    ],
)
def test_refusal_follows_nginx(head: bytes, status: int | None) -> None:
    assert refusal(head) == status


def test_a_400_is_kongs_bad_request_negotiated_on_accept() -> None:
    reply = error_reply(400, POST + b"Accept: application/json")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in head and b"Server: kong/3.9.3" in head
    assert b'"message":"Bad request"' in body
    assert b"Bad request\nrequest_id: " in error_reply(400, POST)  # text/plain by default
