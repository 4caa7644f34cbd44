"""TLS from the gateway to a service, the way Kong 3.9.3 (nginx + its Lua) sets it up.

Sources
-------
* ``kong/runloop/upstream_ssl.lua`` ``set_service_ssl`` (run per request by
  ``kong/runloop/handler.lua`` ``balancer_prepare``): a service's ``client_certificate`` is
  presented (``set_upstream_cert_and_key``); ``tls_verify``, when not nil, switches
  verification on or off (``set_upstream_ssl_verify``); ``tls_verify_depth`` sets the depth;
  ``ca_certificates`` become the trusted store (``set_upstream_ssl_trusted_store``). A CA id
  that does not exist makes ``kong/runloop/certificate.lua`` ``fetch_ca_certificates`` fail
  ("CA Certificate '<id>' does not exist"): Kong logs it (CRIT) and keeps the default store.
* lua-kong-nginx-module ``src/ssl/ngx_lua_kong_ssl.c``: those settings apply to the one
  upstream connection; without a service ``tls_verify`` the nginx directive
  ``proxy_ssl_verify`` decides (``ngx_lua_kong_ssl_get_upstream_ssl_verify``).
* ``build/openresty/patches/nginx-1.25.3_01-upstream_client_certificate_and_ssl_verify.patch``:
  the verification result is checked after the handshake when Kong or nginx asks for it; a
  failure ends the attempt before the request is sent, and Kong answers 502.
* ``kong/templates/nginx_kong.lua``: ``proxy_ssl_name $upstream_host`` and
  ``proxy_ssl_server_name on`` — the SNI and the name verified are the upstream Host header
  without its port (nginx ``ngx_http_upstream_ssl_name``; no SNI for an IP literal). The
  template sets no ``proxy_ssl_verify``, ``proxy_ssl_trusted_certificate`` or
  ``proxy_ssl_verify_depth``: they come only from kong.conf's injected directives
  (``nginx_location_*``, ``nginx_proxy_*``, ``nginx_http_*``).
* nginx ``ngx_http_proxy_module.c`` (``ngx_http_proxy_set_ssl``): ``proxy_ssl_verify on``
  without ``proxy_ssl_trusted_certificate`` refuses to start; the trusted file and
  ``proxy_ssl_verify_depth`` (default 1) are loaded into the proxy's SSL context only when
  ``proxy_ssl_verify`` is on. So with Kong's defaults the default store is **empty** and the
  depth OpenSSL's (100): ``tls_verify: true`` without ``ca_certificates`` fails every
  handshake. ``lua_ssl_trusted_certificate`` is for Lua cosockets, never for proxying.
* ``kong/init.lua`` (balancer): upstream keepalive pools are keyed by
  ``ip|port|sni|client certificate id``.

The harness keeps one httpx client per distinct TLS configuration (:class:`UpstreamClients`)
and passes Kong's SNI per request. A connection is pooled by origin only, so a request whose
SNI is not the service host (``preserve_host``, or a plugin setting Host) goes through a
client of the same configuration that keeps no connection alive: each such request gets its
own handshake with its own name, as Kong's per-SNI pools give it.

Known differences: the verified name of an IP-literal host is matched against IP SANs
(Python) where nginx's ``X509_check_host`` compares the literal with DNS names; kong.conf's
global ``client_ssl``/``client_ssl_cert`` is not modelled (services name their
``client_certificate``); ``ssl_cipher_suite``/``proxy_ssl_protocols`` are Python's defaults.
"""

from __future__ import annotations

import functools
import logging
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("kong_harness.upstream_tls")

OPENSSL_DEFAULT_VERIFY_DEPTH = 100  # X509_VERIFY_PARAM default; nginx sets none unless verifying
NGINX_PROXY_SSL_VERIFY_DEPTH = 1  # proxy_ssl_verify_depth default (ngx_http_proxy_module.c)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's


class ProxySSLError(ValueError):
    """The proxy_ssl_* directives are unusable: nginx would refuse to start."""


def _directive(conf: Mapping[str, str], name: str) -> str | None:
    """An nginx directive of Kong's proxy location as kong.conf injects it: ``location /``
    (``nginx_location_*``) over the proxy server (``nginx_proxy_*``) over the http block
    (``nginx_http_*``), the nginx inheritance order."""
    for block in ("location", "proxy", "http"):
        value = conf.get(f"nginx_{block}_{name}")
        if value is not None and value.strip():
            return value.strip()
    return None


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("on", "off"):
        return value.lower() == "on"
    raise ProxySSLError(f'invalid value "{value}" in "{name}" directive, it must be "on" or "off"')


@dataclass(frozen=True)
class ProxySSL:
    """nginx's ``proxy_ssl_*`` state for Kong's proxy location.

    ``trusted`` is the SSL context's store (PEM certificates; empty unless
    ``proxy_ssl_verify`` is on) and ``verify_depth`` its depth.
    """

    verify: bool = False
    trusted: tuple[str, ...] = ()
    verify_depth: int = OPENSSL_DEFAULT_VERIFY_DEPTH

    @classmethod
    def from_conf(cls, conf: Mapping[str, str]) -> ProxySSL:
        verify = _flag("proxy_ssl_verify", _directive(conf, "proxy_ssl_verify"))
        if not verify:
            return cls()
        trusted_file = _directive(conf, "proxy_ssl_trusted_certificate")
        if trusted_file is None:
            raise ProxySSLError("no proxy_ssl_trusted_certificate for proxy_ssl_verify")
        try:
            pem = Path(trusted_file).read_text()
        except OSError as exc:
            raise ProxySSLError(
                f'SSL_CTX_load_verify_locations("{trusted_file}") failed ({exc})'
            ) from exc
        depth_text = _directive(conf, "proxy_ssl_verify_depth")
        if depth_text is not None and not depth_text.isdigit():
            raise ProxySSLError(f'invalid value "{depth_text}" in "proxy_ssl_verify_depth"')
        depth = int(depth_text) if depth_text is not None else NGINX_PROXY_SSL_VERIFY_DEPTH
        return cls(verify=True, trusted=(pem,), verify_depth=depth)


@dataclass(frozen=True)
class UpstreamTLS:
    """Everything that shapes one upstream handshake; hashable, the client cache key."""

    verify: bool
    verify_depth: int
    trusted: tuple[str, ...]  # CA certificates (PEM) of the store
    client_certificate: tuple[str, str, str] | None = None  # (id, cert PEM, key PEM)


def service_tls(service: Any, proxy: ProxySSL, ca_certificate: Any) -> UpstreamTLS:
    """``upstream_ssl.lua`` ``set_service_ssl`` for ``service`` over nginx's ``proxy`` state;
    ``ca_certificate(id)`` looks a CA certificate entity up (``None`` if missing)."""
    client = None
    cert = service.client_certificate
    if cert is not None:
        client = (cert.id, cert.cert, cert.key)
    verify = proxy.verify if service.tls_verify is None else bool(service.tls_verify)
    depth = (
        proxy.verify_depth if service.tls_verify_depth is None else int(service.tls_verify_depth)
    )
    trusted = proxy.trusted
    if service.ca_certificates is not None:  # a Lua table, even empty, is truthy
        found = [ca_certificate(ca_id) for ca_id in service.ca_certificates]
        missing = [
            ca_id for ca_id, ca in zip(service.ca_certificates, found, strict=True) if ca is None
        ]
        if missing:
            log.critical(
                "unable to get upstream TLS CA store, err: CA Certificate '%s' does not exist",
                missing[0],
            )
        else:
            trusted = tuple(ca.cert for ca in found)
    return UpstreamTLS(
        verify=verify, verify_depth=depth, trusted=trusted, client_certificate=client
    )


def ssl_name(upstream_host: str) -> str:
    """``proxy_ssl_name $upstream_host``: nginx drops a ``:port`` (and IPv6 brackets)."""
    if upstream_host.startswith("["):
        end = upstream_host.find("]")
        return upstream_host[1:end] if end != -1 else upstream_host
    return upstream_host.split(":", 1)[0]


@functools.cache
def _depth_limited(depth: int) -> type[ssl.SSLObject]:
    """An SSLObject that fails the handshake when the verified chain is longer than OpenSSL
    allows for ``depth`` (``SSL_set_verify_depth``): at most ``depth`` intermediates between
    the peer certificate and the trust anchor. Python's ``ssl`` has no depth setting."""

    class DepthLimitedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            chain_of = getattr(self, "get_verified_chain", None)  # public from Python 3.13
            if chain_of is None:
                # typeshed leaves out SSLObject's private _ssl object, which has the method
                chain_of = self._sslobj.get_verified_chain  # type: ignore[attr-defined]
            chain = chain_of()
            if len(chain) > depth + 2:
                raise ssl.SSLCertVerificationError(
                    1,
                    f"certificate verify failed: certificate chain too long (verify depth {depth})",
                )

    return DepthLimitedSSLObject


def ssl_context(tls: UpstreamTLS) -> ssl.SSLContext:
    """The client SSL context for ``tls`` (an empty store trusts nothing)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.verify:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if tls.trusted:
            context.load_verify_locations(cadata="\n".join(tls.trusted))
        if tls.verify_depth < OPENSSL_DEFAULT_VERIFY_DEPTH:
            context.sslobject_class = _depth_limited(tls.verify_depth)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_certificate is not None:
        cert_id, cert, key = tls.client_certificate
        try:
            # ssl loads a certificate chain from files only; a private 0700 directory
            with tempfile.TemporaryDirectory(prefix="kong-harness-tls-") as directory:
                cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
                cert_file.write_text(cert)
                key_file.touch(0o600)
                key_file.write_text(key)
                context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, ValueError, OSError) as exc:
            # upstream_ssl.lua: logged, the handshake goes on without a client certificate
            log.error("unable to apply upstream client TLS certificate %s: %s", cert_id, exc)
    return context


class UpstreamClients:
    """httpx clients for the upstream hop: one per TLS configuration (plain HTTP uses the
    ``None`` one), and for each a non-keepalive twin for requests whose SNI is not the
    service host (see the module docstring). Created on first use, closed by :meth:`aclose`.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[UpstreamTLS | None, bool], httpx.AsyncClient] = {}
        self._contexts: dict[UpstreamTLS, ssl.SSLContext] = {}

    def get(self, tls: UpstreamTLS | None, own_sni: bool = False) -> httpx.AsyncClient:
        key = (tls, own_sni)
        client = self._clients.get(key)
        if client is None:
            verify: ssl.SSLContext | bool = False
            if tls is not None:
                if tls not in self._contexts:
                    self._contexts[tls] = ssl_context(tls)
                verify = self._contexts[tls]
            limits = httpx.Limits(max_keepalive_connections=0) if own_sni else DEFAULT_LIMITS
            client = httpx.AsyncClient(
                trust_env=False, follow_redirects=False, verify=verify, limits=limits
            )
            self._clients[key] = client
        return client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        self._contexts.clear()
        for client in clients:
            await client.aclose()
