"""Grafana stand-in: reads every provisioning file and dashboard as Grafana does at start,
exits non-zero on the first one it cannot read or that Grafana would refuse, then answers
Grafana's health API on 3000.

What it reads (pkg/services/provisioning in Grafana's source):
- GF_PATHS_PROVISIONING/{datasources,dashboards,plugins,alerting}/*.yaml|*.yml, with
  Grafana's `$VAR` / `${VAR}` expansion from the environment and `$$` as a literal `$`;
- datasources: each has a name, names and uids are unique, one default per organisation;
- dashboards: each file provider's `options.path` is a readable folder; every *.json under
  it is a JSON object; dashboard uids are unique.

    GET /api/health                     {"database": "ok", "version": ...}
    GET /api/datasources                (basic auth: GF_SECURITY_ADMIN_USER/PASSWORD)
    GET /api/dashboards/uid/<uid>       (basic auth)
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

PROVISIONING = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
VERSION = os.environ.get("GRAFANA_STANDIN_VERSION", "")
# pkg/services/provisioning/values: $$ escapes, ${VAR} and $VAR expand
EXPANSION = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")


class ProvisioningError(Exception):
    pass


def expand(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return os.environ.get(match[1] or match[2], "")

    return EXPANSION.sub(one, text)


def read_yaml_files(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not folder.is_dir():
        return []
    loaded = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml"):
            continue
        try:
            document = yaml.safe_load(expand(path.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ProvisioningError(f"{path}: {exc}") from exc
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ProvisioningError(f"{path}: not a mapping")
        loaded.append((path, document))
    return loaded


def datasources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    names: set[tuple[int, str]] = set()
    uids: set[tuple[int, str]] = set()
    defaults: dict[int, str] = {}
    for path, document in read_yaml_files(PROVISIONING / "datasources"):
        for source in document.get("datasources") or []:
            org = int(source.get("orgId", 1))
            name = source.get("name")
            if not name:
                raise ProvisioningError(f"{path}: a datasource without a name")
            if (org, name) in names:
                raise ProvisioningError(f"{path}: datasource {name!r} twice")
            names.add((org, name))
            uid = source.get("uid")
            if uid and (org, uid) in uids:
                raise ProvisioningError(f"{path}: datasource uid {uid!r} twice")
            uids.add((org, uid))
            if source.get("isDefault"):
                if org in defaults:
                    raise ProvisioningError(
                        f"{path}: datasource.yaml config is invalid. Only one datasource per "
                        f"organization can be marked as default ({defaults[org]}, {name})"
                    )
                defaults[org] = name
            found.append(source)
    return found


def dashboards() -> dict[str, dict[str, Any]]:
    by_uid: dict[str, dict[str, Any]] = {}
    for path, document in read_yaml_files(PROVISIONING / "dashboards"):
        for provider in document.get("providers") or []:
            if provider.get("type", "file") != "file":
                continue
            folder = Path((provider.get("options") or {}).get("path") or "")
            if not folder.is_dir() or not os.access(folder, os.R_OK | os.X_OK):
                raise ProvisioningError(f"{path}: provider path {folder} is not a readable folder")
            for dashboard_file in sorted(folder.rglob("*.json")):
                try:
                    dashboard = json.loads(dashboard_file.read_text())
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    raise ProvisioningError(f"{dashboard_file}: {exc}") from exc
                if not isinstance(dashboard, dict):
                    raise ProvisioningError(f"{dashboard_file}: not a JSON object")
                uid = str(dashboard.get("uid") or dashboard_file.stem)
                if uid in by_uid:
                    raise ProvisioningError(f"{dashboard_file}: dashboard uid {uid!r} twice")
                by_uid[uid] = dashboard
    return by_uid


def main() -> int:
    try:
        sources = datasources()
        boards = dashboards()
        for sub in ("plugins", "alerting"):
            read_yaml_files(PROVISIONING / sub)
    except ProvisioningError as exc:
        print(f'level=error msg="provisioning failed" error="{exc}"', file=sys.stderr, flush=True)
        return 1
    print(
        f"level=info msg=provisioned datasources={len(sources)} dashboards={len(boards)}",
        flush=True,
    )
    user = os.environ.get("GF_SECURITY_ADMIN_USER", "admin")
    password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = self.route()
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def route(self) -> tuple[int, Any]:
            if self.path == "/api/health":
                return 200, {"commit": "stand-in", "database": "ok", "version": VERSION}
            if self.headers.get("Authorization") != expected:
                return 401, {"message": "Unauthorized"}
            if self.path == "/api/datasources":
                return 200, sources
            if self.path.startswith("/api/dashboards/uid/"):
                uid = self.path.rsplit("/", 1)[-1]
                if uid in boards:
                    return 200, {"dashboard": boards[uid], "meta": {"provisioned": True}}
                return 404, {"message": "Dashboard not found"}
            return 404, {"message": "Not found"}

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", 3000), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print('level=info msg="HTTP Server Listen" address=[::]:3000', flush=True)
    # pid 1 ignores signals it has no handler for: `docker stop` would wait for SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
