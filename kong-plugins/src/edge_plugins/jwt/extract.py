"""Finding the access token in a request.

The configured headers (``Authorization: Bearer …``, scheme case-insensitive, exactly one
token per value), cookies and query parameters. A request that carries *different*
tokens — two sources, or a repeated header — is refused (RFC 6750 §3.1
``invalid_request``): which one would the upstream, a log or a cache use? The same token
sent twice is harmless and accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from edge_plugins.jwt.config import JwtConfig
from edge_plugins.jwt.errors import BearerError, TokenRejected

_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization"})
# RFC 6750 §2.1 b64token, which every JWS compact serialization satisfies.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _values(headers: Mapping[str, Any], name: str) -> list[str]:
    """All values of a header from Kong's multimap (a string, or a list when repeated)."""
    value = headers.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


def _from_header(name: str, value: str, max_bytes: int) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > max_bytes + len("Bearer "):
        raise TokenRejected("oversized")  # before any regex runs over it
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        token = rest.strip()
        if not token or not _B64TOKEN.fullmatch(token):
            raise TokenRejected("malformed")
        return token
    if name in _AUTH_HEADERS:
        return None  # another scheme (Basic, …): not a bearer token, not ours to judge
    if not _B64TOKEN.fullmatch(value):
        raise TokenRejected("malformed")
    return value  # a dedicated token header may carry the bare token


def _cookies(headers: Mapping[str, Any], names: Sequence[str]) -> Iterable[str]:
    wanted = set(names)
    for header in _values(headers, "cookie"):
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if not sep or name.strip() not in wanted:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                yield value


def _query_params(query: str, names: Sequence[str]) -> Iterable[str]:
    if not query or not names:
        return
    wanted = set(names)
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name in wanted and value:
            yield value


def extract_token(config: JwtConfig, headers: Mapping[str, Any], query: str = "") -> str | None:
    """The request's one access token, ``None`` if it carries none.

    Raises :class:`TokenRejected` (``multiple_tokens``, ``invalid_request``) when it
    carries several different ones, or (``malformed``) when a Bearer value is not a token.
    """
    found: list[str] = []
    for name in config.header_names:
        for value in _values(headers, name):
            token = _from_header(name, value, config.max_token_bytes)
            if token is not None:
                found.append(token)
    if config.cookie_names:
        found.extend(_cookies(headers, config.cookie_names))
    if config.query_param_names:
        found.extend(_query_params(query, config.query_param_names))
    distinct = set(found)
    if len(distinct) > 1:
        raise TokenRejected("multiple_tokens", BearerError.INVALID_REQUEST)
    return found[0] if found else None
