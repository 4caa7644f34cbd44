"""The entities of a declarative configuration as the harness holds them, with Kong's defaults:
services, routes, plugins and the certificates for upstream TLS
(``kong/db/schema/entities/*.lua``), and the protocol names they use (``kong/constants.lua``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# constants.lua PROTOCOLS (sorted, as Kong lists them in "expected one of")
PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp")
HTTP_SUBSYSTEM_PROTOCOLS = frozenset(("grpc", "grpcs", "http", "https"))
HARNESS_PROTOCOLS = frozenset(("http", "https"))
DEFAULT_PLUGIN_PROTOCOLS = ("grpc", "grpcs", "http", "https")  # typedefs.protocols default


@dataclass(frozen=True)
class Certificate:
    """A Kong Certificate (``kong/db/schema/entities/certificates.lua``): ``cert`` (PEM, the
    leaf first, then its chain) and ``key`` (PEM), env-vault references resolved."""

    id: str
    cert: str = field(repr=False)
    key: str = field(repr=False)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CACertificate:
    """A Kong CA Certificate (``kong/db/schema/entities/ca_certificates.lua``): one PEM CA."""

    id: str
    cert: str = field(repr=False)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """A Kong Service (``kong/db/schema/entities/services.lua``) with Kong's defaults.

    The TLS fields are Kong's: ``tls_verify`` ``None`` means nginx's ``proxy_ssl_verify``
    decides, ``ca_certificates`` holds ids of :class:`CACertificate` entities (unchecked, as
    in Kong), ``client_certificate`` the referenced :class:`Certificate`.
    """

    id: str
    host: str
    name: str | None = None
    protocol: str = "http"
    port: int = 80
    path: str | None = None
    retries: int = 5
    connect_timeout: int = 60000
    read_timeout: int = 60000
    write_timeout: int = 60000
    enabled: bool = True
    tags: tuple[str, ...] = ()
    client_certificate: Certificate | None = None
    tls_verify: bool | None = None
    tls_verify_depth: int | None = None
    ca_certificates: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Route:
    """A Kong Route (``kong/db/schema/entities/routes.lua``) with Kong's defaults.

    Unset list fields are empty tuples; ``headers`` maps a header name to its values.
    """

    id: str
    name: str | None = None
    service: Service | None = None
    protocols: tuple[str, ...] = ("http", "https")
    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    strip_path: bool = True
    preserve_host: bool = False
    regex_priority: int = 0
    path_handling: str = "v0"
    https_redirect_status_code: int = 426
    request_buffering: bool = True
    response_buffering: bool = True
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginEntity:
    """A Kong Plugin entity (``kong/db/schema/entities/plugins.lua``); ``config`` is raw."""

    id: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    enabled: bool = True
    route: Route | None = None
    service: Service | None = None
    consumer: None = None
    protocols: tuple[str, ...] = DEFAULT_PLUGIN_PROTOCOLS
    instance_name: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def is_global(self) -> bool:
        """No route, service or consumer: Kong's "global" plugin."""
        return self.route is None and self.service is None and self.consumer is None
