"""What a client must not use to choose the view behind a route (docs/architecture.md, "The
route decides what runs").

The contract backends rely on is that the route Kong matched is the view that runs, under
that route's limits and checks. Two things a client sends could break it, and edge-jwt,
which runs on every route, takes both away:

* **CGI-shaped headers.** A WSGI/CGI server builds its environment from the request line
  and the headers; some take the script name or the path from a header a proxy may set
  (gunicorn's ``forwarder_headers``, ``SCRIPT_NAME``/``PATH_INFO`` by default, from any peer
  in ``forwarded_allow_ips``), and frameworks read rewrite headers (``X-Original-URL``,
  ``X-Rewrite-URL``) or a proxy's ``X-Script-Name``. Kong forwards header names with
  underscores (``underscores_in_headers on`` in kong/templates/nginx_kong.lua), so the edge
  clears every header whose name, case-folded with ``_`` read as ``-`` (how a CGI server
  folds it: ``SCRIPT_NAME``, ``Script-Name`` and ``script_name`` are one name), is a CGI/1.1
  meta-variable (RFC 3875 §4.1) other than the two that are HTTP fields (Content-Length,
  Content-Type), a name servers add to that environment for the URL, or a rewrite header.
  Kong's own ``X-Forwarded-Prefix``/``X-Forwarded-Path`` are not among them: Kong sets
  those itself, and takes a client's only from ``trusted_ips``
  (kong/runloop/handler.lua).
* **Encoded separators in the path.** Kong routes on the path normalised by
  kong/tools/uri.lua ``normalize``, which keeps reserved characters encoded (``%2F`` stays
  ``%2F``) and forwards it so, while the backend's server decodes it (gunicorn's
  ``PATH_INFO`` is the unquoted path): ``/api/auth/login%2F2fa`` is the ``login`` route to
  Kong and the ``login/2fa`` view to Django. A ``\\`` is a separator to other servers. So a
  path whose upstream URI holds ``%2F`` or ``%5C`` (any case) is refused with 400, on every
  route: one rule, no route can be reached through another's prefix. ``%252F`` is not
  refused: the backend decodes it once, to the text ``%2F``, which no route has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edge_plugins.jwt.identity import normalize_header_name

# RFC 3875 §4.1: the CGI/1.1 meta-variables, less CONTENT_LENGTH and CONTENT_TYPE.
_META_VARIABLES = (
    "AUTH_TYPE",
    "GATEWAY_INTERFACE",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
)
# What servers add to that environment for the URL (Apache's SCRIPT_URL/SCRIPT_URI and
# REDIRECT_URL, which Django's get_script_name reads; nginx's REQUEST_URI/DOCUMENT_URI;
# gunicorn's RAW_URI), and the rewrite headers frameworks honour from a proxy.
_SERVER_VARIABLES = (
    "REQUEST_URI",
    "RAW_URI",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "SCRIPT_FILENAME",
    "SCRIPT_URL",
    "SCRIPT_URI",
    "REDIRECT_URL",
)
_REWRITE_HEADERS = ("X-Original-URL", "X-Original-URI", "X-Rewrite-URL", "X-Script-Name")

CGI_SHAPED = frozenset(
    normalize_header_name(name)
    for name in (*_META_VARIABLES, *_SERVER_VARIABLES, *_REWRITE_HEADERS)
)

_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c)", re.IGNORECASE)


def is_cgi_shaped(name: str) -> bool:
    """Whether a server or framework behind the edge could take its path from this header."""
    return normalize_header_name(name) in CGI_SHAPED


def cgi_shaped_header_names(header_names: Iterable[str]) -> list[str]:
    """The request's CGI-shaped header names, as sent, for clearing (dupes dropped)."""
    return list(dict.fromkeys(name for name in header_names if is_cgi_shaped(name)))


def has_encoded_separator(upstream_uri: str) -> bool:
    """Whether the path Kong forwards holds an encoded ``/`` or ``\\``."""
    return _ENCODED_SEPARATOR.search(upstream_uri) is not None
