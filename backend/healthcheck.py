"""Container health probe for the backend image (Dockerfile HEALTHCHECK, compose healthcheck).

GETs ``/api/auth/health/ready/`` on the public listener (``GUNICORN_BIND``'s port, default
8080) over loopback. With TLS on (``GUNICORN_CERTFILE``, backend/docs/tls.md) it verifies
the server against ``GUNICORN_CA_CERTS`` for the name ``localhost`` and, since the listener
may require a client certificate, presents ``HEALTHCHECK_CLIENT_CERT`` /
``HEALTHCHECK_CLIENT_KEY`` when set. Exit status 0 when the answer is 200, 1 otherwise.
Standard library only.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys


def _port(env) -> int:
    bind = (env.get("GUNICORN_BIND") or "").strip()
    if bind:
        return int(bind.rsplit(":", 1)[1])
    return int(env.get("PORT", "8080"))


def main() -> int:
    env = os.environ
    port = _port(env)
    path = env.get("HEALTHCHECK_PATH", "/api/auth/health/ready/")
    certfile = (env.get("GUNICORN_CERTFILE") or "").strip()
    try:
        if certfile:
            context = ssl.create_default_context(cafile=(env.get("GUNICORN_CA_CERTS") or None))
            client_cert = (env.get("HEALTHCHECK_CLIENT_CERT") or "").strip()
            if client_cert:
                context.load_cert_chain(
                    client_cert, (env.get("HEALTHCHECK_CLIENT_KEY") or "").strip() or None
                )
            conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=context)
        else:
            conn = http.client.HTTPConnection("localhost", port, timeout=5)
        conn.request("GET", path, headers={"Host": "localhost"})
        status = conn.getresponse().status
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {path} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
