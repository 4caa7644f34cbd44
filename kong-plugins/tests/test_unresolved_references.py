"""An env-vault reference that resolves to nothing is the same as an unset field.

Kong resolves ``{vault://…}`` references when it reads a plugin config; one the vault cannot
answer becomes ``""``, kept (other empty strings are removed) and named in the record's
``$refs`` (kong/db/schema/init.lua ``process_auto_fields``, ``resolve_reference``). Every
referenceable field of every shipped plugin must then behave exactly as if it were absent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge_plugins import edge_jwt, edge_rate_limit, edge_trace
from edge_plugins.jwt.config import JwtConfig
from edge_plugins.ratelimit.config import RateLimitConfig
from edge_plugins.trace.config import TraceConfig

JWT_BASE = {
    "issuer": "https://idp",
    "audiences": ["api"],
    "assertion_audience": "svc",
    "jwks_uri": "https://idp/jwks.json",
    "assertion_signing_key_file": "/keys/gateway.pem",
}
RATE_LIMIT_BASE = {
    "limits": [{"limit": 5, "period": "minute"}],
    "policy": "redis",
    "redis": {
        "url": "redis://cache:6379/1",
        "host": "cache",
        "username": "u",
        "password": "p",
        "timeout_ms": 50,
    },
}
TRACE_BASE = {"otlp_endpoint": "http://collector:4318/v1/traces"}

PLUGINS: list[tuple[Any, Callable[[dict[str, Any]], Any], dict[str, Any]]] = [
    (edge_jwt, JwtConfig.from_kong, JWT_BASE),
    (edge_rate_limit, RateLimitConfig.from_kong, RATE_LIMIT_BASE),
    (edge_trace, TraceConfig.from_kong, TRACE_BASE),
]


def _referenceable(fields: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for entry in fields:
        ((name, field),) = entry.items()
        if field.get("referenceable"):
            yield (*path, name)
        if field.get("type") == "record":
            yield from _referenceable(field.get("fields", ()), (*path, name))


CASES = [
    (module, parse, base, path)
    for module, parse, base in PLUGINS
    for path in _referenceable(module.Schema)
]


def test_every_shipped_plugin_has_referenceable_fields_covered() -> None:
    names = {module.NAME for module, *_ in CASES}
    assert names == {"edge-jwt", "edge-rate-limit", "edge-trace"}


@pytest.mark.parametrize(
    ("module", "parse", "base", "path"),
    CASES,
    ids=[f"{m.NAME}:{'.'.join(p)}" for m, _, _, p in CASES],
)
def test_empty_reference_is_the_same_as_absent(
    module: Any, parse: Any, base: dict[str, Any], path: tuple[str, ...]
) -> None:
    unresolved = copy.deepcopy(base)
    absent = copy.deepcopy(base)
    record, gone = unresolved, absent
    for key in path[:-1]:
        record = record.setdefault(key, {})
        gone = gone.setdefault(key, {})
    record[path[-1]] = ""
    record["$refs"] = {path[-1]: "{vault://env/unset-" + path[-1].replace("_", "-") + "}"}
    gone.pop(path[-1], None)
    assert parse(unresolved) == parse(absent)
