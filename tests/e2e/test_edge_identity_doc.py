"""docs/identity-assertion.md's install-and-configure example, run as written.

The Django and ASGI snippets of the doc (and the package README, which must show the same)
are executed with only the JWKS path and the Redis address swapped for the test's, and fed
assertions that edge-jwt's own signer made (:class:`edge_plugins.jwt.assertion.AssertionSigner`,
the code the gateway signs with) for a token the gateway accepted. The real Redis answers the
once-only and revocation checks, under the doc's key names.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from edge_plugins.jwt.assertion import AssertionSigner, RequestBinding, generate_signing_key
from tests.support.services import REDIS_TEST_URL, redis_unavailable, require

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "identity-assertion.md"
README = ROOT / "backend" / "edge-identity" / "README.md"
DOC_JWKS = "/etc/edge/jwks.json"
DOC_REDIS = "redis://redis"
AUDIENCE = "orders"  # the doc's service
SUBJECT = str(uuid.uuid4())


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)


def snippet(marker: str) -> str:
    """The doc's block containing ``marker``, with the test's addresses in."""
    (block,) = [b for b in python_blocks(DOC) if marker in b]
    return block


def test_the_readme_shows_the_docs_configuration() -> None:
    readme = python_blocks(README)
    for marker in ("EDGE_IDENTITY = ", "MIDDLEWARE", "edge_identity.asgi"):
        assert snippet(marker) in readme


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssertionSigner, Path]:
    """edge-jwt's signer and the public JWKS the services configure."""
    keys = tmp_path_factory.mktemp("gateway-keys")
    generate_signing_key(keys / "gateway-ed25519.pem", keys / "gateway-jwks.json")
    return AssertionSigner(str(keys / "gateway-ed25519.pem")), keys / "gateway-jwks.json"


@pytest.fixture(scope="module")
def redis_conn() -> Iterator[redis.Redis]:
    require(redis_unavailable())
    conn = redis.Redis.from_url(REDIS_TEST_URL)
    yield conn
    conn.close()


def configured(block: str, jwks: Path) -> str:
    """The doc's configuration block, then ``block``, with the test's JWKS and Redis."""
    config = snippet("EDGE_IDENTITY = ")
    assert DOC_JWKS in config and DOC_REDIS in config, config
    config = config.replace(DOC_JWKS, str(jwks)).replace(DOC_REDIS, REDIS_TEST_URL)
    return config + block


Mint = Callable[..., str]


@pytest.fixture
def mint(gateway: tuple[AssertionSigner, Path]) -> Mint:
    signer, _ = gateway

    def mint(method: str, path: str, *, jti: str | None = None) -> str:
        user_token_claims = {  # a user access token edge-jwt accepted
            "sub": SUBJECT,
            "email": "ann@example.com",
            "roles": ["user"],
            "scope": "profile",
            "jti": jti or secrets.token_hex(16),
            "exp": int(time.time()) + 900,
        }
        return signer.sign(user_token_claims, AUDIENCE, request=RequestBinding(method, path))

    return mint


@pytest.fixture
def revoked_jti(redis_conn: redis.Redis) -> Iterator[str]:
    """A user token auth-backend revoked: its key, as tokens.revocation writes it."""
    jti = secrets.token_hex(16)
    redis_conn.set(f"auth.revoked:jti:{jti}", "1", ex=60)
    yield jti
    redis_conn.delete(f"auth.revoked:jti:{jti}")


# --- Django ----------------------------------------------------------------------------------


@pytest.fixture
def django_stack(gateway: tuple[AssertionSigner, Path], redis_conn: redis.Redis) -> Any:
    """The doc's settings snippet applied to a project's settings, and the middleware chain
    Django builds from MIDDLEWARE."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(ALLOWED_HOSTS=["testserver"], USE_TZ=True)
        django.setup()
    from django.http import HttpRequest, HttpResponse
    from django.test import override_settings
    from django.utils.module_loading import import_string

    namespace: dict[str, Any] = {"MIDDLEWARE": []}
    exec(configured(snippet("MIDDLEWARE"), gateway[1]), namespace)

    def view(request: HttpRequest) -> HttpResponse:
        identity = request.edge_identity  # type: ignore[attr-defined]
        return HttpResponse(identity.subject if identity else "anonymous")

    with override_settings(EDGE_IDENTITY=namespace["EDGE_IDENTITY"]):
        handler: Any = view
        for path in reversed(namespace["MIDDLEWARE"]):
            handler = import_string(path)(handler)
        yield handler


def _django_get(handler: Any, path: str, token: str) -> str:
    from django.test import RequestFactory

    response = handler(RequestFactory().get(path, HTTP_X_IDENTITY_ASSERTION=token))
    return response.content.decode()


def test_django_snippet_accepts_a_gateway_assertion_once(django_stack: Any, mint: Mint) -> None:
    token = mint("GET", "/orders/1")
    assert _django_get(django_stack, "/orders/1", token) == SUBJECT
    assert _django_get(django_stack, "/orders/1", token) == "anonymous", "replayed"


def test_django_snippet_refuses_other_requests_and_revoked_tokens(
    django_stack: Any, mint: Mint, revoked_jti: str
) -> None:
    assert _django_get(django_stack, "/orders/2", mint("GET", "/orders/1")) == "anonymous"
    assert _django_get(django_stack, "/orders/1", mint("POST", "/orders/1")) == "anonymous"
    revoked = mint("GET", "/orders/1", jti=revoked_jti)
    assert _django_get(django_stack, "/orders/1", revoked) == "anonymous"


# --- ASGI ------------------------------------------------------------------------------------


class Service:
    """The service's own ASGI app: records what the middleware put in the state."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope["state"]["edge_identity"])


@pytest.fixture
def asgi_stack(gateway: tuple[AssertionSigner, Path], redis_conn: redis.Redis) -> Any:
    service = Service()
    namespace: dict[str, Any] = {"app": service}
    exec(configured(snippet("edge_identity.asgi"), gateway[1]), namespace)
    return namespace["app"], service


def _asgi_get(stack: Any, path: str, token: str) -> Any:
    app, service = stack
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-identity-assertion", token.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    asyncio.run(app(scope, receive, send))
    return service.seen[-1]


def test_asgi_snippet_accepts_a_gateway_assertion_once(asgi_stack: Any, mint: Mint) -> None:
    token = mint("GET", "/orders/1")
    identity = _asgi_get(asgi_stack, "/orders/1", token)
    assert identity is not None and identity.subject == SUBJECT
    assert identity.roles == ("user",) and identity.scopes == ("profile",)
    assert _asgi_get(asgi_stack, "/orders/1", token) is None, "replayed"


def test_asgi_snippet_refuses_other_requests_and_revoked_tokens(
    asgi_stack: Any, mint: Mint, revoked_jti: str
) -> None:
    assert _asgi_get(asgi_stack, "/orders/2", mint("GET", "/orders/1")) is None
    assert _asgi_get(asgi_stack, "/orders/1", mint("GET", "/orders/1", jti=revoked_jti)) is None
