"""``kong.log``: ``kong/pdk/log.lua``, namespaced by plugin, into Python's logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from kong_harness.pdk.context import MAX_HEADERS_DEFAULT, RequestContext
from kong_harness.pdk.private.checks import lua_number
from kong_harness.pdk.private.phases import LOG_ONLY
from kong_harness.pdk.request import decode_query
from kong_harness.pdk.table import PDK, PdkFunction, pdk_method

# kong.log.*: namespaced by plugin (kong_global.set_namespaced_log), into our logging
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "err": logging.ERROR,
    "crit": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emerg": logging.CRITICAL,
}


def _make_log(level_name: str) -> PdkFunction:
    def write(ctx: RequestContext, args: list[Any]) -> None:
        message = "".join(_lua_tostring(a) for a in args)
        ctx.log_lines.append((level_name, message))
        logging.getLogger(f"kong_harness.plugin.{ctx.plugin_name}").log(
            LOG_LEVELS[level_name], "[%s] %s", ctx.plugin_name, message
        )

    return write


def _lua_tostring(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return lua_number(value)
    return str(value)


for _level in LOG_LEVELS:
    PDK[f"kong.log.{_level}"] = _make_log(_level)
PDK["kong.log"] = _make_log("notice")


@pdk_method("kong.log.serialize", LOG_ONLY)
def _log_serialize(ctx: RequestContext, args: list[Any]) -> str:
    # plugin.lua: the JSON of what kong.log.serialize() returned when the log timer was set
    assert ctx.snapshot is not None
    return json.dumps(ctx.snapshot["serialize_data"])


# log.lua serialize: the credentials a log record never carries
_REDACTED_HEADERS = frozenset(("authorization", "proxy-authorization"))


def serialize(
    ctx: RequestContext,
    status: int,
    response_headers: list[tuple[str, str]],
    bytes_sent: int,
    latencies: Mapping[str, float],
    upstream_uri: str,
    upstream_status: int | None,
) -> dict[str, Any]:
    """kong/pdk/log.lua ``serialize`` for the http subsystem."""
    request_headers = ctx.multimap(ctx.headers, MAX_HEADERS_DEFAULT)
    request_uri = ctx.raw_path + ("?" + ctx.raw_query if ctx.raw_query else "")
    return {
        "request": {
            "id": ctx.request_id,
            "uri": request_uri,
            "url": f"{ctx.scheme}://{ctx.host}:{ctx.port}{request_uri}",
            "querystring": {
                k: (v if v is True else (v[0] if len(v) == 1 else v))
                for k, v in decode_query(ctx.raw_query).items()
            },
            "method": ctx.method,
            "headers": {
                k: "REDACTED" if k in _REDACTED_HEADERS else (v[0] if len(v) == 1 else v)
                for k, v in request_headers.items()
            },
            "size": len(ctx.body),
        },
        "upstream_uri": upstream_uri,
        "upstream_status": str(upstream_status) if upstream_status else "",
        "response": {
            "status": status,
            "headers": {
                k: (v[0] if len(v) == 1 else v)
                for k, v in ctx.multimap(response_headers, MAX_HEADERS_DEFAULT).items()
            },
            "size": bytes_sent,
        },
        "latencies": dict(latencies),
        "tries": [],
        "route": dict(ctx.route) if ctx.route else None,
        "service": dict(ctx.service) if ctx.service else None,
        "client_ip": ctx.remote_addr,
        "started_at": int(ctx.start_time * 1000),
        "source": ctx.source,
        "workspace": "00000000-0000-0000-0000-000000000000",
        "workspace_name": "default",
    }
