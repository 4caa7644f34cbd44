"""Request smuggling shapes are refused before any plugin or upstream sees them.

Kong 3.9.3 is OpenResty 1.25.3 (``.requirements``): nginx refuses these while reading the
request head (src/http/ngx_http_request.c, ``ngx_http_process_request_header`` and the
unique-header handlers; RFC 9112 §6.1, §6.3 and §5.2), with 400 and the connection closed,
and kong/templates/nginx_kong.lua ``error_page 400 … /kong_error_handler`` answers it:

* ``Content-Length`` and ``Transfer-Encoding`` together — "client sent "Content-Length" and
  "Transfer-Encoding" headers at the same time";
* ``Content-Length`` twice (even with one value) — "client sent duplicate header line";
  a list or a sign in it — "client sent invalid "Content-Length" header";
* an obs-fold continuation line (a header line starting with a space or tab) — "client sent
  invalid header line";
* ``Host`` twice — "client sent duplicate host header".

An unknown transfer coding is 501 ("client sent unknown "Transfer-Encoding""). Each case
pipelines a second request behind the first: it must never be answered or proxied.
"""

from __future__ import annotations

import pytest

from tests.security.probes import raw_exchange, statuses
from tests.security.stack import Stack

SMUGGLED = b"GET /sec-open/smuggled HTTP/1.1\r\nHost: x\r\nX-User-Id: victim\r\n\r\n"

SHAPES: dict[str, tuple[bytes, int]] = {
    "cl-te": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "te-cl": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 70\r\n\r\n0\r\n\r\n",
        400,
    ),
    "cl-te-upper-case": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nCONTENT-LENGTH: 5\r\n"
        b"TRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n",
        400,
    ),
    "duplicate-cl-different": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 70\r\n\r\n",
        400,
    ),
    "duplicate-cl-same": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        400,
    ),
    "cl-list": (b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n", 400),
    "cl-plus-sign": (b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n", 400),
    "obs-fold-te": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "obs-fold-identity": (
        b"GET /sec-open/a HTTP/1.1\r\nHost: x\r\nX-Trace: a\r\n X-User-Id: victim\r\n\r\n",
        400,
    ),
    "obs-fold-tab": (
        b"GET /sec-open/a HTTP/1.1\r\nHost: x\r\nX-Trace: a\r\n\tX-User-Id: victim\r\n\r\n",
        400,
    ),
    "duplicate-host": (b"GET /sec-open/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    "te-unknown": (
        b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "te-http10": (
        b"POST /sec-open/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_smuggling_shapes_are_refused(stack: Stack, shape: str) -> None:
    head, status = SHAPES[shape]
    since = len(stack.upstream.requests)
    answer = raw_exchange(stack.port, head + SMUGGLED)
    assert statuses(answer) == [status], answer[:500]
    if status == 400:
        assert b"Bad request" in answer, answer[:500]  # kong/error_handlers.lua's message
    assert stack.upstream.requests[since:] == []


def test_control_a_clean_pipeline_is_served(stack: Stack) -> None:
    """The same two requests, well formed: both answered, both proxied, no identity."""
    first = b"POST /sec-open/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    since = len(stack.upstream.requests)
    last = SMUGGLED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    answer = raw_exchange(stack.port, first + last, quiet=5)  # closed after the second
    assert statuses(answer) == [200, 200], answer[:500]
    records = stack.upstream.requests[since:]
    assert [r["path"] for r in records] == ["/a", "/smuggled"]
    assert all(k.lower() != "x-user-id" for r in records for k, _ in r["headers"])
