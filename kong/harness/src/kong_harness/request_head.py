"""Request heads nginx refuses before Kong runs: the request smuggling shapes.

Kong 3.9.3 is OpenResty 1.25.3 (``.requirements``). Its nginx reads the request head itself
(src/http/ngx_http_request.c: ``ngx_http_process_request_headers``, the unique-header
handlers and ``ngx_http_process_request_header``) and finalizes the request, closing the
connection, when

* a header line starts with a space or a tab (an obs-fold continuation, RFC 9112 §5.2):
  "client sent invalid header line" — 400;
* ``Content-Length`` appears twice, even with one value ("client sent duplicate header
  line"), or is not a plain decimal number ("client sent invalid "Content-Length"
  header") — 400;
* ``Host`` appears twice ("client sent duplicate host header") — 400;
* ``Transfer-Encoding`` comes with an HTTP/1.0 request, or with ``Content-Length``
  ("client sent "Content-Length" and "Transfer-Encoding" headers at the same time") — 400;
  a coding other than ``chunked`` ("client sent unknown "Transfer-Encoding"") — 501.

A 400 goes to kong/templates/nginx_kong.lua's ``error_page 400 … /kong_error_handler``
(kong/error_handlers.lua: "Bad request"); 501 has no Kong error page, nginx answers it.

uvicorn's h11 accepts all of these (it unfolds obs-fold, merges equal ``Content-Length``
values and lets ``Transfer-Encoding`` win over ``Content-Length``), so the harness checks
each request head before h11 parses it (:class:`NginxH11Protocol`).
"""

from __future__ import annotations

import re
import secrets

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from kong_harness.pdk import error_body, error_content_type

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DIGITS = re.compile(rb"[0-9]+")
SERVER_TOKENS = b"kong/3.9.3"


def refusal(head: bytes) -> int | None:
    """The status nginx answers a request ``head`` (request line and header lines, without
    the blank line) with before any Lua runs, or None when it reads it."""
    lines = re.split(rb"\r?\n", head.lstrip(b"\r\n"))
    request_line, fields = lines[0], lines[1:]
    counts: dict[bytes, int] = {}
    values: dict[bytes, bytes] = {}
    for line in fields:
        if line[:1] in (b" ", b"\t"):
            return 400
        name, sep, value = line.partition(b":")
        if not sep:
            continue  # h11 refuses it (400) in any case
        key = name.lower()
        counts[key] = counts.get(key, 0) + 1
        values[key] = value.strip(b" \t")
    if counts.get(b"host", 0) > 1 or counts.get(b"content-length", 0) > 1:
        return 400
    if b"content-length" in values and not _DIGITS.fullmatch(values[b"content-length"]):
        return 400
    if b"transfer-encoding" in values:
        if request_line.rstrip().endswith(b"HTTP/1.0"):
            return 400
        if values[b"transfer-encoding"].lower() != b"chunked":
            return 501
        if b"content-length" in values:
            return 400
    return None


def _field(head: bytes, name: bytes) -> str | None:
    for line in re.split(rb"\r?\n", head)[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def error_reply(status: int, head: bytes) -> bytes:
    """The whole response to a refused head: Kong's error handler for 400 (its body
    negotiated on ``Accept``, else ``Content-Type``, else kong.conf's default
    ``error_default_type`` text/plain), nginx's own page for 501."""
    if status == 400:
        accept = _field(head, b"accept") or _field(head, b"content-type") or "text/plain"
        content_type = error_content_type(accept)
        body = error_body(400, "Bad request", secrets.token_hex(16), content_type)
        reason = b"Bad Request"
    else:
        content_type = "text/html"
        body = b"<html>\r\n<head><title>501 Not Implemented</title></head>\r\n</html>\r\n"
        reason = b"Not Implemented"
    return (
        b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s"
        % (status, reason, SERVER_TOKENS, content_type.encode(), len(body), body)
    )


class NginxH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, refusing a request head as nginx would (see the module)."""

    def handle_events(self) -> None:
        if self.conn.their_state is h11.IDLE:
            buffered, _ = self.conn.trailing_data
            end = _HEAD_END.search(buffered)
            if end is not None:
                head = buffered[: end.start()]
                status = refusal(head)
                if status is not None:
                    # Written as bytes: h11 has not read this request, so cannot frame a reply.
                    self.transport.write(error_reply(status, head))
                    self.transport.close()
                    return
        super().handle_events()
