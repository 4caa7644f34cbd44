"""Reading ``kong.conf`` the way Kong's conf loader does, for the plugin-server settings.

Source: kong/conf_loader/init.lua (pluginserver_names → socket/start/query commands) and
kong/conf_loader/parse.lua (``key = value`` lines, ``#`` comments, ``KONG_*`` overrides).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_PREFIX = "/usr/local/kong"
DEFAULT_PLUGINSERVER_PATH = "/usr/local/bin"  # kong/conf_loader/constants.lua

_COMMENT = re.compile(r"(?<!\\)#.*$")


class KongConfError(ValueError):
    """kong.conf is unusable: the message says which setting and why."""


@dataclass(frozen=True)
class PluginServerDef:
    """One entry of ``pluginserver_names`` with its resolved settings."""

    name: str
    socket: str
    start_command: str | None  # None: managed externally (Kong only warns)
    query_command: str


@dataclass(frozen=True)
class KongConf:
    values: Mapping[str, str]
    prefix: str
    pluginservers: tuple[PluginServerDef, ...]

    def with_local_paths(self, prefix: str | None, bin_dir: str | None) -> KongConf:
        """Point the production paths of kong.conf at a local prefix and bin directory.

        The same kong.conf serves the Kong image and local runs: socket paths under Kong's
        prefix move under ``prefix``, and each command's program (an absolute path, as
        README.md "Writing a plugin" requires) is looked up in ``bin_dir`` by its file name.
        """
        servers = tuple(
            replace(
                s,
                socket=_rebase(s.socket, self.prefix, prefix),
                start_command=_relocate(s.start_command, self.prefix, prefix, bin_dir),
                query_command=_relocate(s.query_command, self.prefix, prefix, bin_dir) or "",
            )
            for s in self.pluginservers
        )
        return replace(self, prefix=prefix or self.prefix, pluginservers=servers)


def parse_conf_text(text: str) -> dict[str, str]:
    """Parse kong.conf syntax: ``key = value``, ``#`` starts a comment unless escaped."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).replace("\\#", "#").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise KongConfError(f"line {lineno}: expected 'key = value', got {raw.strip()!r}")
        values[key.strip().lower()] = value.strip()
    return values


def load_kong_conf(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> KongConf:
    """Load kong.conf; ``KONG_<KEY>`` environment variables override file values."""
    values = parse_conf_text(Path(path).read_text())
    env = os.environ if env is None else env
    for key, value in env.items():
        if key.startswith("KONG_") and len(key) > 5:
            values[key[5:].lower()] = value
    prefix = values.get("prefix", DEFAULT_PREFIX).rstrip("/") or "/"
    return KongConf(values=values, prefix=prefix, pluginservers=_pluginservers(values, prefix))


def _pluginservers(values: Mapping[str, str], prefix: str) -> tuple[PluginServerDef, ...]:
    names = [n.strip().lower() for n in values.get("pluginserver_names", "").split(",")]
    servers = []
    for name in filter(None, names):
        key = "pluginserver_" + name.replace("-", "_")
        default_path = f"{DEFAULT_PLUGINSERVER_PATH}/{name}"
        has_default = os.path.exists(default_path)
        start = values.get(key + "_start_cmd") or (default_path if has_default else None)
        query = values.get(key + "_query_cmd") or (f"{default_path} -dump" if has_default else None)
        if not query:
            raise KongConfError(f"query_command undefined for pluginserver {name}")
        socket = values.get(key + "_socket") or f"{prefix}/{name}.socket"
        servers.append(PluginServerDef(name, socket, start, query))
    return tuple(servers)


def _rebase(path: str, old_prefix: str, new_prefix: str | None) -> str:
    if new_prefix and (path == old_prefix or path.startswith(old_prefix.rstrip("/") + "/")):
        return new_prefix.rstrip("/") + path[len(old_prefix.rstrip("/")) :]
    return path


def _relocate(
    command: str | None, old_prefix: str, new_prefix: str | None, bin_dir: str | None
) -> str | None:
    if command is None:
        return None
    argv = shlex.split(command)
    if bin_dir and argv and os.path.isabs(argv[0]):
        argv[0] = os.path.join(bin_dir, os.path.basename(argv[0]))
    argv = [_rebase(a, old_prefix, new_prefix) for a in argv]
    return shlex.join(argv)
