"""The real backend, and the harness gateway in front of it, for the fuzz tests.

The backend runs as the end-to-end tests run it (tests/support/backend.py: gunicorn, SQLite
in a temporary directory, the console email backend). Google sign-in is configured with a
client id and a local, empty key set, so ``POST google/login`` answers as it does in
production (401 for a token no key verifies) instead of 503 ``google_login_unavailable``.
The gateway loads the repository's kong/kong.yml with edge-jwt only (no rate limits: the
fuzzer's bursts must reach the backend), pointed at this backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
import yaml

from tests.support.backend import Backend, User, repo_kong_yml, running_backend, sign_up
from tests.support.harness import HarnessRunner, serve_in_thread, shipped_plugins_runner

GOOGLE_CLIENT_ID = "fuzz-client.apps.googleusercontent.com"


class EmptyGoogleKeys(BaseHTTPRequestHandler):
    """Google's certificate endpoint, with no keys: no ID token verifies."""

    def do_GET(self) -> None:
        body = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def fuzz_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    google_keys = serve_in_thread(EmptyGoogleKeys)
    env = {
        "GOOGLE_CLIENT_ID": GOOGLE_CLIENT_ID,
        "GOOGLE_JWKS_URL": f"http://127.0.0.1:{google_keys.server_port}/oauth2/v3/certs",
    }
    try:
        with running_backend(tmp_path_factory.mktemp("fuzz-backend"), env) as server:
            yield server
    finally:
        google_keys.shutdown()


@pytest.fixture(scope="session")
def fuzz_gateway(fuzz_backend: Backend) -> Iterator[HarnessRunner]:
    doc = repo_kong_yml(fuzz_backend, plugins=("edge-jwt",))
    runner = shipped_plugins_runner(yaml.safe_dump(doc, sort_keys=False), ("edge-jwt",)).start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="session")
def fuzz_user(fuzz_gateway: HarnessRunner, fuzz_backend: Backend) -> User:
    """A verified user signed in through the gateway (register, verify-email, login)."""
    with fuzz_gateway.client() as client:
        return sign_up(client, fuzz_backend)


@pytest.fixture(scope="session")
def public_schema_document(fuzz_backend: Backend) -> dict:
    response = httpx.get(f"{fuzz_backend.url}/api/auth/schema/", params={"format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas (``from_fixture``) name each operation's subtest by
    rewriting ``node._nodeid``, an attribute pytest 9 no longer has: give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
