"""Run under gevent's monkey patching, as the plugin server does (edge_plugins.server.serve).

Prints one JSON line with what happened; test_gevent.py runs it in a subprocess because
monkey patching cannot be undone inside the test process.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from edge_plugins.jwt import state  # noqa: E402
from edge_plugins.jwt.assertion import RequestBinding, generate_signing_key  # noqa: E402
from edge_plugins.jwt.decision import decide  # noqa: E402
from tests.support.edge_jwt import (  # noqa: E402
    JwksEndpoint,
    access_claims,
    jwks_of,
    make_config,
    mint,
    new_rsa_key,
    serve_jwks,
)


def main() -> None:
    key = new_rsa_key()
    endpoint = JwksEndpoint(document=jwks_of(key), cache_control="max-age=0", delay=0.2)
    server = serve_jwks(endpoint)
    directory = Path(tempfile.mkdtemp())
    generate_signing_key(directory / "a.pem", directory / "a.json")
    config = make_config(directory / "a.pem", jwks_uri=endpoint.url)
    runtime = state.runtime_for(config)
    runtime.keys._min_ttl = 0.3  # refresh ahead quickly to see the background greenlet work
    now = int(time.time())
    token = mint(key, **access_claims(iat=now, nbf=now, exp=now + 900))

    def one() -> int:
        verdict = decide(
            config,
            method="GET",
            headers={"authorization": [f"Bearer {token}"]},
            query="",
            keys=runtime.keys,
            revocations=runtime.revocations,
            signer=runtime.signer,
            cache=runtime.cache,
            now=time.time(),
            request_target=lambda: RequestBinding("GET", "/api/auth/profile"),
        )
        return verdict.status

    jobs = [gevent.spawn(one) for _ in range(20)]
    gevent.joinall(jobs, timeout=10)
    statuses = [job.value for job in jobs]
    first_fetches = endpoint.count()
    gevent.sleep(1.5)
    report = {
        "statuses": statuses,
        "first_fetches": first_fetches,
        "later_fetches": endpoint.count(),
    }
    state.reset_runtimes()
    server.shutdown()
    print(json.dumps(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
