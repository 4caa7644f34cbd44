"""Kong's own HTTP endpoints: the Status API (``status_listen``) and a read-only Admin API
(``admin_listen``), as ASGI apps over a :class:`~kong_harness.gateway.Gateway`.

Sources (Kong 3.9.3): kong/status/init.lua (the Status API: health.lua's ``/status``,
ready.lua's ``/status/ready``, and each loaded plugin's ``status_api.lua`` — prometheus's
``/metrics``), kong/api/routes/health.lua (``/status``), kong/status/ready.lua,
kong/api/routes/kong.lua (``/``), kong/api/api_helpers.lua (404 "Not found", 405 "Method
not allowed", a trailing slash tolerated), kong/templates/kong_defaults.lua (listeners),
kong/conf_loader/parse.lua (listen syntax).

The harness is DB-less (it loads kong.yml, as Kong with ``database = off``): ``/status``
has ``configuration_hash`` and no ``database`` entry, and readiness is the DB-less check.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from kong_harness import KONG_VERSION, SERVER_TOKENS, prometheus
from kong_harness.gateway import Gateway, GatewayConfigError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# kong/templates/kong_defaults.lua
DEFAULT_ADMIN_LISTEN = (
    "127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384"
)
DEFAULT_STATUS_LISTEN = "127.0.0.1:8007 reuseport backlog=16384"
# kong/constants.lua DECLARATIVE_EMPTY_CONFIG_HASH
EMPTY_CONFIG_HASH = "0" * 32


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    ssl: bool = False


def parse_listen(key: str, value: str) -> list[Listen]:
    """kong.conf listen syntax, minimally: ``off`` or ``addr:port [flag ...]``, comma
    separated (conf_loader parse_listeners). ``ssl`` listeners are refused: the harness
    serves plain HTTP only."""
    value = value.strip()
    if value.lower() == "off":
        return []
    out = []
    for entry in filter(None, (e.strip() for e in value.split(","))):
        address, *flags = entry.split()
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise GatewayConfigError(
                f"{key} must be of form: [off] | <ip>:<port> [ssl] "
                f"[http2] [proxy_protocol] [deferred] [bind] "
                f"[reuseport] [backlog=%d] ..., [... next entry ...]"
            )
        if "ssl" in flags:
            raise GatewayConfigError(
                f"{key}: the harness does not serve TLS listeners "
                f"({entry!r}); use a plain address:port"
            )
        out.append(Listen(host.strip("[]") or "0.0.0.0", int(port), False))
    return out


def listeners(conf: Mapping[str, str]) -> dict[str, list[Listen]]:
    """The status and admin listeners kong.conf asks for (Kong's defaults when unset)."""
    return {
        "status": parse_listen("status_listen", conf.get("status_listen", DEFAULT_STATUS_LISTEN)),
        "admin": parse_listen("admin_listen", conf.get("admin_listen", DEFAULT_ADMIN_LISTEN)),
    }


def status_app(gateway: Gateway) -> App:
    """The Status API: ``/status``, ``/status/ready`` and, with prometheus loaded (kong.conf
    ``plugins``), ``/metrics`` (prometheus status_api.lua)."""
    routes: dict[str, dict[str, Callable[..., Awaitable[tuple[int, Any]]]]] = {
        "/status": {"GET": _status},
        "/status/ready": {"GET": _ready_get, "POST": _ready_post},
    }
    if prometheus.NAME in gateway.bundled:
        routes["/metrics"] = {"GET": _metrics}
    return _app(gateway, routes)


def admin_app(gateway: Gateway) -> App:
    """The Admin API, read-only and reduced to ``/`` and ``/status`` (kong.lua, health.lua);
    every other path is api_helpers' 404."""
    return _app(gateway, {"/": {"GET": _root}, "/status": {"GET": _status}})


def _app(gateway: Gateway, routes: Mapping[str, Mapping[str, Any]]) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        path = scope["path"]
        route = routes.get(path)
        if route is None and path.endswith("/") and path != "/":
            route = routes.get(path.rstrip("/"))  # api_helpers default_route
        if route is None:
            status, payload = 404, {"message": "Not found"}
        elif scope["method"] not in route:
            status, payload = 405, {"message": "Method not allowed"}
        else:
            status, payload = await route[scope["method"]](gateway, scope, body)
        if isinstance(payload, bytes):
            content_type, data = b"text/plain; charset=UTF-8", payload
        elif payload is None:
            content_type, data = None, b""
        else:
            content_type = b"application/json; charset=utf-8"
            data = json.dumps(payload, separators=(",", ":")).encode()
        headers = [
            (b"content-length", str(len(data)).encode()),
            (b"server", SERVER_TOKENS.encode()),
        ]
        if content_type:
            headers.insert(0, (b"content-type", content_type))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


# -- kong/api/routes/health.lua ------------------------------------------------------------
def _bytes_to_str(value: int, unit: str, scale: int) -> str | int:
    """kong/tools/string.lua bytes_to_str."""
    u = unit.lower()
    if u in ("", "b"):
        return f"{value:d}"
    divisor = {"k": (2**10, "KiB"), "m": (2**20, "MiB"), "g": (2**30, "GiB")}.get(u)
    if divisor is None:
        raise ValueError(f"invalid unit '{unit}' (expected 'k/K', 'm/M', or 'g/G')")
    return f"{value / divisor[0]:.{scale}f} {divisor[1]}"


async def _status(gateway: Gateway, scope: Scope, _body: bytes) -> tuple[int, Any]:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    unit = query.get("unit", ["m"])[-1]
    scale_text = query.get("scale", [None])[-1]
    try:
        scale = 2 if scale_text is None else float(scale_text)
        if scale < 0 or scale != int(scale):
            raise ValueError("scale must be equal or greater than 0")
        # kong/pdk/node.lua get_memory_stats(unit, scale): every byte count through
        # bytes_to_str (what the harness has for them: kong_harness/node_memory.py).
        raw = gateway.memory_stats()
        memory = {
            "workers_lua_vms": [
                {
                    **vm,
                    "http_allocated_gc": _bytes_to_str(vm["http_allocated_gc"], unit, int(scale)),
                }
                for vm in raw["workers_lua_vms"]
            ],
            "lua_shared_dicts": {
                name: {k: _bytes_to_str(v, unit, int(scale)) for k, v in zone.items()}
                for name, zone in raw["lua_shared_dicts"].items()
            },
        }
    except ValueError as exc:
        return 400, {"message": str(exc)}
    # DB-less: configuration_hash instead of the database entry
    return 200, {
        "memory": memory,
        "server": gateway.stats.snapshot(),
        "configuration_hash": gateway.config_hash or EMPTY_CONFIG_HASH,
    }


# -- kong/status/ready.lua ---------------------------------------------------------------
async def _ready_get(gateway: Gateway, _scope: Scope, _body: bytes) -> tuple[int, Any]:
    if gateway.draining:
        return 503, {"message": "draining"}
    workers = max(1, gateway.settings.workers)
    built = len(gateway.workers) if gateway.router is not None else 0
    if built < workers:  # the router and plugins iterator are built with the workers
        return 503, {
            "message": f"router builds not yet complete, router ready in {built} "
            f"of {workers} workers"
        }
    if not gateway.config_hash:
        return 503, {
            "message": "no configuration available (configuration hash is not initialized)"
        }
    return 200, {"message": "ready"}


async def _ready_post(gateway: Gateway, scope: Scope, body: bytes) -> tuple[int, Any]:
    content_type = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"content-type"), ""
    )
    params: Mapping[str, Any]
    try:
        params = (
            json.loads(body or b"{}")
            if "json" in content_type
            else {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        )
    except ValueError:
        params = {}
    if isinstance(params, dict) and params.get("status") == "draining":
        gateway.draining = True
        return 204, None
    return 400, None


# -- kong/plugins/prometheus/status_api.lua -----------------------------------------------
async def _metrics(gateway: Gateway, _scope: Scope, _body: bytes) -> tuple[int, Any]:
    return 200, gateway.prometheus.render()


# -- kong/api/routes/kong.lua ---------------------------------------------------------------
async def _root(gateway: Gateway, _scope: Scope, _body: bytes) -> tuple[int, Any]:
    conf = gateway.settings.kong_conf.values

    def as_list(key: str, default: str = "") -> list[str]:
        return [v.strip() for v in conf.get(key, default).split(",") if v.strip()]

    available: dict[str, dict[str, Any]] = {
        name: {"version": info.version, "priority": info.priority}
        for name, info in gateway.bundled.items()
    }
    for name, info in gateway.external.items():
        available[name] = {"version": info.version, "priority": info.priority}
    enabled: list[str] = []
    for entity in gateway.config.plugins if gateway.config else ():
        if entity.name not in enabled:
            enabled.append(entity.name)
    # kong.configuration.remove_sensitive(), reduced to what the harness reads
    configuration = {
        "database": "off",
        "role": "traditional",
        "prefix": gateway.settings.kong_conf.prefix,
        "plugins": as_list("plugins", "bundled"),
        "loaded_plugins": dict.fromkeys(available, True),
        "pluginserver_names": as_list("pluginserver_names"),
        "admin_listen": as_list("admin_listen", DEFAULT_ADMIN_LISTEN),
        "status_listen": as_list("status_listen", DEFAULT_STATUS_LISTEN),
        "trusted_ips": as_list("trusted_ips"),
        "real_ip_header": conf.get("real_ip_header", "X-Real-IP"),
        "real_ip_recursive": conf.get("real_ip_recursive", "off"),
    }
    return 200, {
        "tagline": "Welcome to kong",
        "version": KONG_VERSION,
        "edition": "community",
        "hostname": socket.gethostname(),
        "node_id": gateway.node_id,
        "timers": {"running": len(gateway._log_tasks), "pending": 0},
        "plugins": {"available_on_server": available, "enabled_in_cluster": enabled},
        "configuration": configuration,
        "pids": {"master": os.getpid()},
    }
