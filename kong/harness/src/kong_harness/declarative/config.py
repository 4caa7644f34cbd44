"""The loaded configuration: its entities linked together, and which plugin configuration
applies to a request (``kong/runloop/plugins_iterator.lua``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from kong_harness.entities import (
    HTTP_SUBSYSTEM_PROTOCOLS,
    CACertificate,
    Certificate,
    PluginEntity,
    Route,
    Service,
)


@dataclass(frozen=True)
class DeclarativeConfig:
    """Services, routes and plugins of a declarative configuration, linked together, and
    the certificates the services use for upstream TLS."""

    format_version: str
    services: tuple[Service, ...]
    routes: tuple[Route, ...]
    plugins: tuple[PluginEntity, ...]
    certificates: tuple[Certificate, ...] = ()
    ca_certificates: tuple[CACertificate, ...] = ()

    @functools.cached_property
    def _combos(self) -> dict[str, dict[tuple[str | None, str | None], PluginEntity]]:
        """``plugins_iterator.lua`` ``PluginsIterator.new``: only plugins that are enabled and
        have an HTTP-subsystem protocol (``should_process_plugin``) are indexed, by name and
        (route id, service id)."""
        combos: dict[str, dict[tuple[str | None, str | None], PluginEntity]] = {}
        for plugin in self.plugins:
            if not plugin.enabled:
                continue
            if not any(p in HTTP_SUBSYSTEM_PROTOCOLS for p in plugin.protocols):
                continue
            key = (
                plugin.route.id if plugin.route else None,
                plugin.service.id if plugin.service else None,
            )
            combos.setdefault(plugin.name, {})[key] = plugin
        return combos

    def plugins_for(self, route: Route | None, service: Service | None) -> list[PluginEntity]:
        """For each plugin name, the configuration Kong runs for a request on ``route`` /
        ``service`` (``plugins_iterator.lua`` ``lookup_cfg``, no consumer): route+service,
        else route, else service, else global. Disabled plugins are not candidates at all,
        so a disabled route plugin lets the service or global one apply. Order: first
        appearance in the file (execution order by priority is the caller's business)."""
        route_id = route.id if route is not None else None
        service_id = service.id if service is not None else None
        result: list[PluginEntity] = []
        for combos in self._combos.values():
            found = None
            if route_id and service_id:
                found = combos.get((route_id, service_id))
            if found is None and route_id:
                found = combos.get((route_id, None))
            if found is None and service_id:
                found = combos.get((None, service_id))
            if found is None:
                found = combos.get((None, None))
            if found is not None:
                result.append(found)
        return result

    def global_plugins(self) -> list[PluginEntity]:
        """Enabled global plugins (the only ones Kong runs in ``rewrite``)."""
        return self.plugins_for(None, None)

    def service(self, name_or_id: str) -> Service:
        """The service with this name or id (``KeyError`` if none)."""
        for s in self.services:
            if name_or_id in (s.name, s.id):
                return s
        raise KeyError(name_or_id)

    def ca_certificate(self, ca_id: str) -> CACertificate | None:
        """The CA certificate with this id, or ``None`` (``kong.db.ca_certificates:select``)."""
        for ca in self.ca_certificates:
            if ca.id.lower() == ca_id.lower():
                return ca
        return None

    def route(self, name_or_id: str) -> Route:
        """The route with this name or id (``KeyError`` if none)."""
        for r in self.routes:
            if name_or_id in (r.name, r.id):
                return r
        raise KeyError(name_or_id)
