"""The gateway: Kong's request lifecycle as an ASGI application.

Sources: kong/init.lua (phase iterators: global rewrite, collecting access with delayed
responses, collected response, log timers), kong/runloop/handler.lua (router, X-Forwarded-*,
Via, latency and request-id headers), kong/runloop/plugins_iterator.lua (configs per route,
``__seq__``), kong/error_handlers.lua and kong/runloop/balancer (502/503/504); TLS to
services in upstream_tls.py (kong/runloop/upstream_ssl.lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, TextIO

import httpx

from kong_harness import SERVER_TOKENS, node_memory, pdk, prometheus, realip
from kong_harness.access_log import AccessLog, AccessLogConfigError, Entry
from kong_harness.conf import KongConf
from kong_harness.declarative import DeclarativeConfig, load_declarative
from kong_harness.entities import PluginEntity
from kong_harness.plugin_servers import (
    ExternalPlugin,
    PluginAborted,
    PluginServerProcess,
    PluginWorker,
    query_plugin_info,
)
from kong_harness.router import Router
from kong_harness.rpc import MsgpackRpcClient
from kong_harness.schema import ConfigError, process_config, select_config
from kong_harness.upstream_tls import (
    ProxySSL,
    ProxySSLError,
    UpstreamClients,
    service_tls,
    ssl_name,
)

log = logging.getLogger("kong_harness.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
UNEXPECTED = "An unexpected error occurred"
DEFAULT_WORKSPACE_ID = "00000000-0000-0000-0000-000000000000"


class GatewayConfigError(RuntimeError):
    """kong.yml or a plugin config is invalid: Kong refuses to start with such a message."""


@dataclass(frozen=True)
class BundledPlugin:
    """A Lua plugin shipped with Kong that the harness runs itself (only ``prometheus``)."""

    name: str
    priority: int
    version: str
    phases: tuple[str, ...]
    schema: Mapping[str, Any]


# Bundled plugins the harness implements; kong.conf ``plugins = bundled`` (Kong's default,
# kong/templates/kong_defaults.lua) or naming them loads them (kong/constants.lua
# BUNDLED_PLUGINS, kong/conf_loader/init.lua).
BUNDLED = {
    prometheus.NAME: BundledPlugin(
        prometheus.NAME,
        prometheus.PRIORITY,
        prometheus.VERSION,
        prometheus.PHASES,
        prometheus.SCHEMA,
    ),
}


def loaded_bundled_plugins(conf: Mapping[str, str]) -> dict[str, BundledPlugin]:
    names = {n.strip().lower() for n in conf.get("plugins", "bundled").split(",")}
    return {
        name: info
        for name, info in BUNDLED.items()
        if "off" not in names and ("bundled" in names or name in names)
    }


@dataclass(frozen=True)
class ConfiguredPlugin:
    """A plugin entity with its validated config, as plugins_iterator.lua hands it over."""

    entity: PluginEntity
    plugin: ExternalPlugin | BundledPlugin
    conf: Mapping[str, Any]

    @property
    def order_key(self) -> tuple[int, str]:
        # kong/db/dao/plugins.lua sort_by_handler_priority: priority desc, then name desc
        return (self.plugin.priority, self.plugin.name)


@dataclass
class Worker:
    """One simulated nginx worker: its own RPC endpoints and plugin instances."""

    index: int
    plugins: dict[str, PluginWorker] = field(default_factory=dict)


@dataclass
class GatewaySettings:
    kong_conf: KongConf
    declarative_config: Path
    workers: int = 2
    plugin_timeout: float = 60.0  # Kong's cosocket timeout (lua_socket_*_timeout)
    fail_open: bool = True  # Kong's behaviour; off only for tests that need errors to surface
    start_plugin_servers: bool = True


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.node_id = str(uuid.uuid4())
        conf = settings.kong_conf.values
        self.trusted = pdk.trusted_ips_checker(conf.get("trusted_ips", "").split(","))
        # nginx directives, read once: realip (see realip.py) and max_headers
        self.real_ip_header, self.real_ip_recursive = realip.settings(conf)
        self.max_headers = _max_headers(conf)
        self.client_body_buffer_size = _size(conf.get("client_body_buffer_size", "8k"))
        self.client_max_body_size = _client_max_body_size(conf)
        try:  # nginx's proxy_ssl_* directives (kong.conf nginx_*_proxy_ssl_*)
            self.proxy_ssl = ProxySSL.from_conf(conf)
        except ProxySSLError as exc:
            raise GatewayConfigError(f"nginx: [emerg] {exc}") from exc
        self.external: dict[str, ExternalPlugin] = {}
        self.bundled = loaded_bundled_plugins(conf)
        self.stats = NodeStats()  # nginx's stub_status counters (kong.nginx.get_statistics)
        try:  # the proxy's access_log (access_log.py)
            self.access_log = AccessLog.from_conf(conf)
        except AccessLogConfigError as exc:
            raise GatewayConfigError(f"nginx: [emerg] {exc}") from exc
        self._access_stream: TextIO | None = None
        self.config_hash: str | None = None  # declarative.get_current_hash: md5 of kong.yml
        self.draining = False  # POST /status/ready status=draining (kong/status/ready.lua)
        self.prometheus = prometheus.PrometheusExporter(
            self.node_id,
            self.stats.snapshot,
            # log handlers run where Kong runs them, in timers (ngx.timer.running_count)
            lambda: {"running": len(self._log_tasks), "pending": 0},
            self.memory_stats,
        )
        self.processes: dict[str, PluginServerProcess] = {}
        self.config: DeclarativeConfig | None = None
        self.router: Router | None = None
        self.configured: dict[str, ConfiguredPlugin] = {}  # by plugin entity id
        self.workers: list[Worker] = []
        self._next_worker = itertools.cycle(range(max(1, settings.workers)))
        self._log_tasks: set[asyncio.Task[None]] = set()
        # One httpx client per upstream TLS configuration (upstream_tls.py), not per request.
        self.upstream_clients = UpstreamClients()

    def memory_stats(self) -> dict[str, Any]:
        """kong.node.get_memory_stats() in bytes (node_memory.py)."""
        return node_memory.memory_stats(
            self.settings.kong_conf.values, "prometheus" in self.bundled
        )

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for server in self.settings.kong_conf.pluginservers:
            info = await loop.run_in_executor(None, query_plugin_info, server)
            self.external[info.name] = info
            log.info(
                "[pluginserver] loaded plugin %s %s (priority %d, phases %s)",
                info.name,
                info.version,
                info.priority,
                ",".join(info.phases),
            )
        self.load_config(self.settings.declarative_config)
        if self.settings.start_plugin_servers:
            for server in self.settings.kong_conf.pluginservers:
                process = PluginServerProcess(server)
                self.processes[server.name] = process
                await process.start()
        # Kong serves as soon as its workers run, plugin sockets bound or not (process.lua
        # starts the servers from a timer; kong/init.lua does not wait for them): a request
        # before a server listens gets StartInstance's 500. Deployments hold traffic back
        # with a readiness check on the sockets (plugin_servers_ready; edge-plugins-ready in
        # the Kong image).
        self.workers = [self._new_worker(i) for i in range(max(1, self.settings.workers))]

    async def plugin_servers_ready(self, timeout: float = 20.0) -> None:
        """Wait until every plugin server this gateway started accepts connections."""
        for process in self.processes.values():
            if process.server.start_command is not None:
                await process.wait_ready(timeout)

    def _new_worker(self, index: int) -> Worker:
        worker = Worker(index)
        for name, info in self.external.items():
            rpc = MsgpackRpcClient(info.server.socket, timeout=self.settings.plugin_timeout)
            plugin = PluginWorker(
                info, rpc, fail_open=self.settings.fail_open, reset_everywhere=self._reset_instances
            )
            rpc.on_notification = plugin.notification  # plugin.lua Rpc:notification
            worker.plugins[name] = plugin
        return worker

    def _reset_instances(self, plugin_name: str) -> None:
        """plugin.lua ``reset_instances_for_plugin`` in every worker (a worker event)."""
        for worker in self.workers:
            worker.plugins[plugin_name].reset_instances()

    def load_config(self, path: Path) -> None:
        """Load kong.yml and validate every plugin config; any error refuses the start."""
        try:
            config = load_declarative(path)
            config_hash = hashlib.md5(Path(path).read_bytes()).hexdigest()  # noqa: S324
        except Exception as exc:
            raise GatewayConfigError(str(exc)) from exc
        configured: dict[str, ConfiguredPlugin] = {}
        for seq, entity in enumerate(config.plugins, 1):
            info: ExternalPlugin | BundledPlugin | None = self.external.get(
                entity.name
            ) or self.bundled.get(entity.name)
            if info is None:
                raise GatewayConfigError(
                    f"declarative config is invalid: plugin '{entity.name}' not enabled; "
                    "add it to the 'plugins' configuration property"
                )
            try:
                # Stored with nulls, read back by the plugins iterator without them.
                conf = select_config(info.schema, process_config(info.schema, entity.config))
            except ConfigError as exc:
                raise GatewayConfigError(
                    f"declarative config is invalid: plugin '{entity.name}' ({entity.id}): {exc}"
                ) from exc
            # plugins_iterator.lua get_plugin_config: ids of the entity's scope (nil ones
            # vanish from the JSON), the plugin id, workspace, lookup key and sequence.
            extra = {
                "route_id": entity.route.id if entity.route else None,
                "service_id": entity.service.id if entity.service else None,
                "consumer_id": None,
                "plugin_instance_name": entity.instance_name,
                "__plugin_id": entity.id,
                "__ws_id": DEFAULT_WORKSPACE_ID,
                "__key__": ":".join(
                    (
                        entity.route.id if entity.route else "",
                        entity.service.id if entity.service else "",
                        "",
                    )
                ),
                "__seq__": seq,
            }
            conf.update({k: v for k, v in extra.items() if v is not None})
            configured[entity.id] = ConfiguredPlugin(entity, info, conf)
        self.config = config
        self.router = Router(list(config.routes))
        self.configured = configured
        self.config_hash = config_hash
        # prometheus handler.lua configure(configs) -> exporter.lua: enabled when some
        # prometheus plugin is configured (and enabled)
        self.prometheus.enabled = any(
            p.entity.name == prometheus.NAME and p.entity.enabled for p in configured.values()
        )

    async def stop(self) -> None:
        for task in list(self._log_tasks):
            task.cancel()
        for worker in self.workers:
            for plugin_worker in worker.plugins.values():
                await plugin_worker.rpc.aclose()
        for process in self.processes.values():
            await process.stop()
        await self.upstream_clients.aclose()

    async def drain_logs(self, timeout: float = 10.0) -> None:
        """Wait for pending log-phase handlers (tests use it to observe the log phase)."""
        if self._log_tasks:
            await asyncio.wait(list(self._log_tasks), timeout=timeout)

    # -- plugin selection ---------------------------------------------------------------
    def _plugins(self, route: Any, service: Any, phase: str) -> list[ConfiguredPlugin]:
        assert self.config is not None
        entities = (
            self.config.plugins_for(route, service)
            if route is not None
            else self.config.global_plugins()
        )
        selected = [self.configured[e.id] for e in entities]
        selected = [p for p in selected if phase in p.plugin.phases]
        return sorted(selected, key=lambda p: p.order_key, reverse=True)

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.time()
        if len(scope["headers"]) > self.max_headers:
            await self._too_many_header_lines(scope, send, started)
            return
        limit = self.client_max_body_size
        if limit and _content_length(scope) > limit:
            await self._body_too_large(scope, send, started)
            return
        body, too_large = await _read_body(receive, limit)
        ctx = self._context(scope, body, started)
        worker = self.workers[next(self._next_worker)]
        await self._handle(ctx, worker, send, started, body_too_large=too_large)

    async def _too_many_header_lines(self, scope: Scope, send: Send, started: float) -> None:
        """Kong 3.9.3's nginx stops reading a request at header line ``max_headers`` + 1.

        build/openresty/patches/nginx-1.25.3_17-CVE-2026-49975.patch (ngx_http_request.c
        ``ngx_http_process_request_headers``): ``max_headers`` (default 1000) counts each
        parsed line; the next one finalizes the request with 494 and a lingering close, the
        body unread. kong/templates/nginx_kong.lua ``error_page 494 =494
        /kong_error_handler`` hands it to kong/error_handlers.lua, which answers 400 with
        "Request header or cookie too large", negotiated on Accept, else Content-Type, else
        ``error_default_type`` (gRPC requests are not modelled). No plugin runs before it;
        Kong.log runs the global log plugins (no ctx.plugins: the global iterator).
        """
        await self._refuse_before_plugins(scope, send, started, 494)

    async def _body_too_large(self, scope: Scope, send: Send, started: float) -> None:
        """nginx's ``client_max_body_size`` on a ``Content-Length`` larger than it.

        kong/templates/kong_defaults.lua ``nginx_http_client_max_body_size = 0`` (no limit)
        unless kong.conf sets it (``nginx_proxy_client_max_body_size`` for the proxy server
        block alone). nginx checks the declared length when it picks the location
        (ngx_http_core_module.c ``ngx_http_core_find_config_handler``: "client intended to
        send too large body"), before the rewrite and access phases, so no plugin runs and no
        plugin server is asked; it discards the body and closes the connection (a 413 turns
        keepalive off in ``ngx_http_special_response_handler``). ``error_page 413
        /kong_error_handler`` (kong/templates/nginx_kong.lua) answers with
        kong/error_handlers.lua's "Payload too large". A chunked body has no declared
        length: see :meth:`_handle`.
        """
        await self._refuse_before_plugins(scope, send, started, 413)

    async def _refuse_before_plugins(
        self, scope: Scope, send: Send, started: float, status: int
    ) -> None:
        ctx = self._context(scope, b"", started)
        response = self._error_handler_response(ctx, status)
        ctx.source = "kong"
        response.headers += [
            ("Server", SERVER_TOKENS),
            ("X-Kong-Request-Id", ctx.request_id),
        ]
        bytes_sent = await response.send(send)
        worker = self.workers[next(self._next_worker)]
        self._schedule_log(ctx, None, worker, response, bytes_sent, started)

    def _error_handler_response(self, ctx: pdk.RequestContext, status: int) -> _Response:
        """kong/error_handlers.lua for an error nginx itself raised: its message for the
        status (494 answered as 400), negotiated on Accept, else Content-Type, else
        ``error_default_type`` (gRPC requests are not modelled); the connection closes."""
        conf = self.settings.kong_conf.values
        accept = (
            pdk.request_header(ctx, "Accept")
            or pdk.request_header(ctx, "Content-Type")
            or conf.get("error_default_type", "text/plain")
        )
        content_type = pdk.error_content_type(accept)
        message = _ERROR_HANDLER_BODIES[status]
        status = 400 if status == 494 else status
        body = pdk.error_body(status, message, ctx.request_id, content_type)
        return _Response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
            body=body,
        )

    def _context(self, scope: Scope, body: bytes, started: float) -> pdk.RequestContext:
        headers = [
            (k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in scope["headers"]
        ]
        peer_ip = (scope.get("client") or ("127.0.0.1", 0))[0]
        # nginx's realip module (set_real_ip_from = trusted_ips, kong/templates/nginx_kong.lua;
        # real_ip_header/real_ip_recursive, kong/templates/kong_defaults.lua): see realip.py
        remote_addr = realip.remote_addr(
            peer_ip, headers, self.real_ip_header, self.real_ip_recursive, self.trusted
        )
        host_header = next((v for k, v in headers if k.lower() == "host"), "")
        server = scope.get("server") or ("127.0.0.1", 8000)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        # An absolute-form target (RFC 9112 §3.2.2): nginx's $request_uri is its path and
        # $host its authority (src/http/ngx_http_parse.c); h11 hands over the whole URI.
        absolute = _ABSOLUTE_FORM.fullmatch(raw_path)
        if absolute is not None:
            host_header = absolute.group(1).decode("latin-1")
            raw_path = absolute.group(2) or b"/"
        return pdk.RequestContext(
            method=scope["method"],
            scheme=scope.get("scheme", "http"),
            host=(
                host_header.rsplit(":", 1)[0]
                if host_header and not host_header.endswith("]")
                else host_header or server[0]
            ).lower(),
            port=server[1] or 80,
            raw_path=raw_path.decode("latin-1"),
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            http_version=float(scope.get("http_version", "1.1")),
            headers=headers,
            body=body,
            peer_ip=peer_ip,
            remote_addr=remote_addr,
            request_id=pdk.new_request_id(),
            start_time=started,
            node_id=self.node_id,
            trusted=self.trusted,
            client_body_buffer_size=self.client_body_buffer_size,
        )

    async def _handle(
        self,
        ctx: pdk.RequestContext,
        worker: Worker,
        send: Send,
        started: float,
        body_too_large: bool = False,
    ) -> None:
        """One request through Kong's phases.

        ``body_too_large``: a chunked body passed ``client_max_body_size``. nginx reads such
        a body only when it proxies the request (``proxy_request_buffering`` on: the whole
        body before the upstream is contacted, ngx_http_request_body.c "client intended to
        send too large chunked body"), so the plugins run as for any request and may answer
        first; a request they let through is answered 413 by kong/error_handlers.lua and
        never reaches the upstream.
        """
        plugins_ran: list[ConfiguredPlugin] = []
        response: _Response | None = None
        # rewrite: global plugins only, before the router (kong/init.lua rewrite phase)
        for plugin in self._plugins(None, None, "rewrite"):
            response = await self._run_phase(plugin, "rewrite", ctx, worker)
            if response is not None:
                break
        match = None
        if response is None:
            assert self.router is not None
            host_header = next((v for k, v in ctx.headers if k.lower() == "host"), None)
            match = self.router.match(
                ctx.method,
                host_header,
                ctx.raw_path,
                ctx.multimap(ctx.headers, 1000),
                server_port=ctx.port,
            )
            if match is None:
                response = self._kong_error(ctx, 404, "no Route matched with those values")
        if response is None and match is not None:
            ctx.route = _entity_table(match.route)
            ctx.service = _entity_table(match.service) if match.service else None
            ctx.uri_captures = match.uri_captures
            ctx.router_upstream_uri = match.upstream_uri  # handler.lua var.upstream_uri
            plugins_ran = self._plugins(match.route, match.service, "access")
            for plugin in plugins_ran:
                response = await self._run_phase(plugin, "access", ctx, worker)
                if response is not None:
                    break  # kong/init.lua: a delayed response stops the collecting iterator
        access_done = time.time()
        if response is None and match is not None and body_too_large:
            response = self._error_handler_response(ctx, 413)
            ctx.source = "kong"
        if response is None and match is not None:
            response = await self._proxy(ctx, match, worker, started, access_done)
        else:
            response = response or self._kong_error(ctx, 500, None)
            response_latency = int((access_done - started) * 1000)
            response.headers.append(("X-Kong-Response-Latency", str(response_latency)))
            # kong/init.lua access: a delayed (plugin) response sets KONG_RESPONSE_LATENCY,
            # which kong/pdk/log.lua serialize reports as latencies.kong (proxy stays -1).
            ctx.ngx_ctx["latencies"] = {"kong": response_latency, "proxy": -1, "receive": 0}
            if not any(k.lower() == "server" for k, _ in response.headers):
                response.headers.append(("Server", SERVER_TOKENS))
        response.headers.append(("X-Kong-Request-Id", ctx.request_id))
        bytes_sent = await response.send(send)
        self._schedule_log(ctx, match, worker, response, bytes_sent, started)

    async def _run_phase(
        self, plugin: ConfiguredPlugin, phase: str, ctx: pdk.RequestContext, worker: Worker
    ) -> _Response | None:
        """Run one plugin's phase; a response means the request ends here."""
        try:
            await worker.plugins[plugin.plugin.name].handle_event(plugin.conf, phase, ctx)
        except pdk.Terminated:
            assert ctx.exit is not None
            ctx.source = "exit"
            headers = _merge_headers(ctx.response_headers, ctx.exit.headers)
            return _Response(ctx.exit.status, headers, body=ctx.exit.body)
        except PluginAborted:
            # kong/init.lua execute_collecting_plugins_iterator: a throwing handler gives
            # a delayed 500 "An unexpected error occurred".
            ctx.source = "error"
            return self._kong_error(ctx, 500, UNEXPECTED)
        return None

    def _kong_error(self, ctx: pdk.RequestContext, status: int, message: str | None) -> _Response:
        """kong.response.error as Kong itself uses it (router 404, handler errors, 50x)."""
        accept = next((v for k, v in ctx.headers if k.lower() == "accept"), None)
        content_type = pdk.error_content_type(accept)
        body = pdk.error_body(status, message, ctx.request_id, content_type)
        ctx.source = "kong" if status < 500 else "error"
        headers = [
            *ctx.response_headers,
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
        return _Response(status, headers, body=body)

    # -- proxying -----------------------------------------------------------------------
    async def _proxy(
        self,
        ctx: pdk.RequestContext,
        match: Any,
        worker: Worker,
        started: float,
        access_done: float,
    ) -> _Response:
        service = match.service
        if service is None:
            return self._kong_error(ctx, 500, UNEXPECTED)
        upstream_path = ctx.upstream_path or match.upstream_uri
        query = ("?" + ctx.raw_query) if ctx.raw_query else ""
        host_header = ctx.upstream_host or match.upstream_host or service.host
        url = f"{service.protocol}://{_url_host(service.host)}:{service.port}{upstream_path}{query}"
        request_headers = self._upstream_headers(ctx, match, host_header)
        timeout = httpx.Timeout(
            connect=service.connect_timeout / 1000,
            read=service.read_timeout / 1000,
            write=service.write_timeout / 1000,
            pool=None,
        )
        extensions: dict[str, Any] = {}
        if service.protocol == "https":
            # upstream_ssl.lua set_service_ssl; SNI and verified name: proxy_ssl_name
            # $upstream_host (kong/templates/nginx_kong.lua), the Host header sent
            assert self.config is not None
            tls = service_tls(service, self.proxy_ssl, self.config.ca_certificate)
            sni = ssl_name(host_header)
            own_sni = sni.lower() != service.host.lower()
            if own_sni:
                extensions["sni_hostname"] = sni
            client = self.upstream_clients.get(tls, own_sni)
        else:
            client = self.upstream_clients.get(None)
        request = client.build_request(
            ctx.method,
            url,
            headers=request_headers,
            content=ctx.body,
            timeout=timeout,
            extensions=extensions,
        )
        sent_at = time.time()
        try:
            upstream = await client.send(request, stream=True)
        except httpx.TimeoutException:
            return self._kong_error(ctx, 504, None)
        except httpx.ConnectError as exc:
            if "Name or service not known" in str(exc) or "nodename" in str(exc):
                return self._kong_error(ctx, 503, "name resolution failed")
            # a refused connection or a failed TLS handshake / verification (nginx's
            # upstream error, after the patched ngx_http_upstream_ssl_handshake): 502
            log.error("%r while connecting to upstream %s", exc, url)
            return self._kong_error(ctx, 502, None)
        except (httpx.HTTPError, ssl.SSLError) as exc:
            # ssl.SSLError: a TLS alert read after the handshake, e.g. TLS 1.3's "certificate
            # required" from an upstream that wants a client certificate (httpcore leaves it
            # unmapped); nginx fails the attempt the same way: 502
            log.error("%r while reading response header from upstream %s", exc, url)
            return self._kong_error(ctx, 502, None)
        first_byte = time.time()
        ctx.source = "service"
        ctx.upstream_status = upstream.status_code
        ctx.upstream_headers = [
            (k.decode("latin-1"), _header_text(v))
            for k, v in upstream.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        response_plugins = self._plugins(match.route, match.service, "response")
        body_iter = None
        body: bytes | None = None
        if response_plugins:
            # A plugin with a response phase makes Kong buffer the upstream response
            # (kong/init.lua sets ngx.ctx.buffered_proxying; the log phase reads it back).
            ctx.ngx_ctx["buffered_proxying"] = True
            try:
                body = await upstream.aread()
            except (httpx.HTTPError, ssl.SSLError):
                return self._kong_error(ctx, 502, None)
            finally:
                await upstream.aclose()
            ctx.response_status = upstream.status_code
            for plugin in response_plugins:
                exited = await self._run_phase(plugin, "response", ctx, worker)
                if exited is not None:
                    return exited
        else:
            body_iter = upstream
        status = ctx.response_status or upstream.status_code
        headers = _merge_headers(ctx.upstream_headers, ctx.response_headers)
        via = next((v for k, v in ctx.upstream_headers if k.lower() == "via"), None)
        headers = [(k, v) for k, v in headers if k.lower() != "via"]
        headers.append(("Via", f"{via}, 1.1 {SERVER_TOKENS}" if via else f"1.1 {SERVER_TOKENS}"))
        headers.append(("X-Kong-Upstream-Latency", str(int((first_byte - sent_at) * 1000))))
        headers.append(("X-Kong-Proxy-Latency", str(int((sent_at - started) * 1000))))
        if not any(k.lower() == "server" for k, _ in headers):
            headers.append(("Server", SERVER_TOKENS))
        ctx.ngx_ctx["latencies"] = {
            "kong": int((sent_at - started) * 1000),
            "proxy": int((first_byte - sent_at) * 1000),
            "receive": 0,
        }
        ctx.ngx_ctx["upstream_uri"] = upstream_path + query
        if body_iter is not None:
            return _Response(status, headers, stream=body_iter)
        return _Response(status, headers, body=body or b"")

    def _upstream_headers(
        self, ctx: pdk.RequestContext, match: Any, host_header: str
    ) -> list[tuple[bytes, bytes]]:
        """Client headers as plugins left them, plus what Kong's proxy adds (handler.lua).

        Values go out as bytes: the client's own where nobody changed them (nginx passes
        header bytes on as they came, obs-text included; httpx would refuse a non-ASCII
        ``str``). Names are ASCII-encoded, as httpx encodes a ``str`` name."""
        trusted = self.trusted(ctx.peer_ip)

        def incoming(name: str) -> str | None:
            values = ctx.header_values(name)
            return values[0] if values and trusted else None

        out = [
            (k, v)
            for k, v in ctx.headers
            if k.lower() not in HOP_BY_HOP and k.lower() not in _PROXY_SET_HEADERS
        ]
        xff = ", ".join(ctx.header_values("X-Forwarded-For"))
        prefix = match.matched_path
        out += [
            ("Host", host_header),
            ("X-Real-IP", ctx.remote_addr),
            ("X-Forwarded-For", f"{xff}, {ctx.peer_ip}" if xff else ctx.remote_addr),
            ("X-Forwarded-Proto", incoming("X-Forwarded-Proto") or ctx.scheme),
            ("X-Forwarded-Host", incoming("X-Forwarded-Host") or ctx.host),
            ("X-Forwarded-Port", incoming("X-Forwarded-Port") or str(ctx.port)),
            (
                "X-Forwarded-Path",
                incoming("X-Forwarded-Path") or _header_text(ctx.raw_path.encode("latin-1")),
            ),
        ]
        forwarded_prefix = incoming("X-Forwarded-Prefix") or (
            prefix if prefix and prefix != "/" else None
        )
        if forwarded_prefix:
            out.append(("X-Forwarded-Prefix", forwarded_prefix))
        via = ", ".join(ctx.header_values("Via"))
        out.append(("Via", f"{via}, 1.1 {SERVER_TOKENS}" if via else f"1.1 {SERVER_TOKENS}"))
        out.append(("X-Kong-Request-Id", ctx.request_id))
        return [(k.encode("ascii"), _header_bytes(v)) for k, v in out]

    # -- log phase ----------------------------------------------------------------------
    def _schedule_log(
        self,
        ctx: pdk.RequestContext,
        match: Any,
        worker: Worker,
        response: _Response,
        bytes_sent: int,
        started: float,
    ) -> None:
        self._write_access_log(ctx, response.status, bytes_sent)
        route = match.route if match else None
        service = match.service if match else None
        plugins = self._plugins(route, service, "log")
        if not plugins:
            return
        latencies = dict(ctx.ngx_ctx.get("latencies") or {"kong": 0, "proxy": -1, "receive": 0})
        latencies["request"] = int((time.time() - started) * 1000)
        serialized = pdk.serialize(
            ctx,
            response.status,
            response.headers,
            bytes_sent,
            latencies,
            ctx.ngx_ctx.get("upstream_uri", ""),
            ctx.upstream_status,
        )
        # plugin.lua: the log timer gets a snapshot; ctx.shared is the same table, ngx.ctx a clone
        snapshot = {
            "serialize_data": serialized,
            "request_headers": ctx.multimap(ctx.headers, pdk.MAX_HEADERS_DEFAULT),
            "response_headers": ctx.multimap(response.headers, pdk.MAX_HEADERS_DEFAULT),
            "response_status": response.status,
        }
        for plugin in plugins:
            if plugin.entity.name == prometheus.NAME:
                # a Lua plugin: its log handler reads kong.log.serialize() and
                # kong.response.get_source() (prometheus handler.lua, exporter.lua)
                self.prometheus.log(plugin.conf, serialized, ctx.source)
                continue
            log_ctx = pdk.RequestContext(
                **{
                    **ctx.__dict__,
                    "ngx_ctx": dict(ctx.ngx_ctx),
                    "snapshot": snapshot,
                    "phase": "log",
                    "log_lines": ctx.log_lines,
                }
            )
            task = asyncio.create_task(self._log_one(plugin, log_ctx, worker))
            self._log_tasks.add(task)
            task.add_done_callback(self._log_tasks.discard)

    def _write_access_log(self, ctx: pdk.RequestContext, status: int, bytes_sent: int) -> None:
        """nginx's access_log of the proxy server, written in the log phase."""
        if self.access_log is None:
            return
        if self._access_stream is None:
            try:
                self._access_stream = self.access_log.stream_for(self.settings.kong_conf.prefix)
            except OSError as exc:  # nginx: "[emerg] open() ... failed"; here: log, go on
                log.error("access_log %s: %s (access log off)", self.access_log.path, exc)
                self.access_log = None
                return
        entry = Entry(ctx, status, bytes_sent, time.time())
        self._access_stream.write(self.access_log.line(entry) + "\n")
        self._access_stream.flush()

    async def _log_one(
        self, plugin: ConfiguredPlugin, ctx: pdk.RequestContext, worker: Worker
    ) -> None:
        try:
            await worker.plugins[plugin.plugin.name].handle_event(plugin.conf, "log", ctx)
        except (PluginAborted, pdk.Terminated) as exc:
            log.error("[%s] log phase: %s", plugin.plugin.name, exc)


_PROXY_SET_HEADERS = frozenset(
    {
        "host",
        "x-real-ip",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "via",
        "x-kong-request-id",
    }
)


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | None = None
    stream: httpx.Response | None = None

    async def send(self, send: Send) -> int:
        # nginx adds Date unless the upstream's is passed on (proxy_pass_header Date in
        # kong/templates/nginx_kong.lua).
        if not any(k.lower() == "date" for k, _ in self.headers):
            self.headers.insert(0, ("Date", formatdate(usegmt=True)))
        raw = [(k.encode("latin-1"), _header_bytes(v)) for k, v in self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        if self.stream is None:
            await send({"type": "http.response.body", "body": self.body or b""})
            return len(self.body or b"")
        sent = 0
        try:
            async for chunk in self.stream.aiter_raw():
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (httpx.HTTPError, ssl.SSLError) as exc:
            log.error("upstream prematurely closed connection: %s", exc)
        finally:
            await self.stream.aclose()
        await send({"type": "http.response.body", "body": b""})
        return sent


def _header_text(raw: bytes) -> str:
    """A header value as the harness holds it, like every string the plugins exchange with
    it over MessagePack (rpc.py): UTF-8 with the bytes that are not escaped as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def _header_bytes(value: str) -> bytes:
    """The bytes of a header value held by :func:`_header_text` (the wire's, unchanged)."""
    return value.encode("utf-8", "surrogateescape")


def _merge_headers(
    base: list[tuple[str, str]], override: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    names = {k.lower() for k, _ in override}
    return [(k, v) for k, v in base if k.lower() not in names] + list(override)


def _entity_table(entity: Any) -> dict[str, Any]:
    """An entity as kong.router.get_route/get_service return it (references as {id})."""
    out: dict[str, Any] = {}
    for key, value in vars(entity).items():
        if key.startswith("_") or key == "regex":
            continue
        if hasattr(value, "id") and not isinstance(value, str | int | float | list | dict):
            value = {"id": value.id}
        elif isinstance(value, tuple):
            value = list(value)
        if isinstance(value, str | int | float | bool | list | dict) or value is None:
            out[key] = value
    return out


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)(/.*)?", re.DOTALL)


def _max_headers(conf: Mapping[str, str]) -> int:
    """nginx ``max_headers`` (Kong 3.9.3's CVE-2026-49975 patch, default 1000), settable
    through Kong's injected directives: ``nginx_proxy_max_headers`` (the proxy server
    block) over ``nginx_http_max_headers`` (the http block)."""
    value = conf.get("nginx_proxy_max_headers") or conf.get("nginx_http_max_headers")
    return int(value) if value and value.strip().isdigit() else 1000


def _size(value: str) -> int:
    value = value.strip().lower()
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}  # nginx ngx_parse_size
    if value and value[-1] in units:
        return int(value[:-1]) * units[value[-1]]
    return int(value)


async def _read_body(receive: Receive, limit: int = 0) -> tuple[bytes, bool]:
    """The request body, and whether it passed ``limit`` bytes (0: no limit); past the
    limit the rest is read and dropped, as nginx discards it."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if not limit or size <= limit:
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    too_large = bool(limit) and size > limit
    return (b"" if too_large else b"".join(chunks)), too_large


def _content_length(scope: Scope) -> int:
    """The declared body length (-1 without one; the protocol layer refuses a malformed
    or repeated one, see request_head.py)."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else -1
    return -1


def _client_max_body_size(conf: Mapping[str, str]) -> int:
    """nginx ``client_max_body_size`` of the proxy server block, in bytes (0: no limit):
    kong.conf ``nginx_proxy_client_max_body_size`` over ``nginx_http_client_max_body_size``
    (Kong's default 0, kong/templates/kong_defaults.lua)."""
    value = conf.get("nginx_proxy_client_max_body_size") or conf.get(
        "nginx_http_client_max_body_size", "0"
    )
    return _size(value)


# kong/error_handlers.lua BODIES, for the statuses nginx itself raises here.
_ERROR_HANDLER_BODIES = {413: "Payload too large", 494: "Request header or cookie too large"}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _CountingSet(set[Any]):
    """uvicorn's set of open connections, counting every connection ever added."""

    accepted = 0

    def add(self, item: Any) -> None:
        self.accepted += 1
        super().add(item)


class NodeStats:
    """nginx's stub_status counters for the whole node, which kong.nginx.get_statistics
    (kong/pdk/nginx.lua) reads: every listener of the node (proxy, status, admin) shares one
    uvicorn ``ServerState``, whose connection set gives nginx's accepted/active connections;
    requests are counted as they arrive, as nginx counts them. A request being answered is
    "writing"; the
    harness does not see a connection reading its request line, so "reading" is 0 and an
    idle keep-alive connection is "waiting"."""

    def __init__(self) -> None:
        from uvicorn.server import ServerState

        self.state = ServerState()
        self.state.connections = _CountingSet()
        self.writing = 0
        self.requests = 0

    def snapshot(self) -> dict[str, int]:
        connections = self.state.connections
        accepted = getattr(connections, "accepted", len(connections))
        active = len(connections)
        writing = min(self.writing, active) if active else self.writing
        return {
            "connections_active": active,
            "connections_reading": 0,
            "connections_writing": writing,
            "connections_waiting": max(active - writing, 0),
            "connections_accepted": accepted,
            "connections_handled": accepted,  # nginx: equal unless worker_connections ran out
            "total_requests": self.requests,
        }

    def track(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]]
    ) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            self.requests += 1
            self.writing += 1
            try:
                await app(scope, receive, send)
            finally:
                self.writing -= 1

        return tracked


async def serve(
    gateway: Any,
    host: str,
    port: int,
    ready: asyncio.Event | None = None,
    log_level: str = "info",
    stats: NodeStats | None = None,
) -> None:
    """Run an ASGI app (the gateway's proxy, or its status or admin API) on ``host:port``
    with uvicorn until cancelled; ``stats`` (the gateway's own by default) counts its
    connections and requests with the node's."""
    import uvicorn

    from kong_harness.request_head import NginxH11Protocol

    if stats is None and isinstance(gateway, Gateway):
        stats = gateway.stats
    app = stats.track(gateway) if stats is not None else gateway
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the realip logic is ours (trusted_ips)
        date_header=False,
        http=NginxH11Protocol,  # request heads nginx refuses (smuggling shapes)
    )  # Date is ours (see _Response.send)
    server = uvicorn.Server(config)
    if stats is not None:
        server.server_state = stats.state
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if ready is not None:
        ready.set()
    try:
        await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
