"""``edge-plugins-ready``: the readiness check for a Kong node running these plugin servers.

Kong serves as soon as its workers run; it starts the plugin servers from a timer
(kong/runloop/plugin_servers/process.lua) and never waits for their sockets, so a request
that arrives first gets a 500 (StartInstance cannot connect). A deployment therefore marks a
Kong node ready only when every plugin server answers::

    edge-plugins-ready /usr/local/kong/edge-trace.socket /usr/local/kong/edge-jwt.socket \\
        /usr/local/kong/edge-rate-limit.socket

(a Kubernetes ``readinessProbe`` ``exec``, a Compose ``healthcheck``, together with
``kong health``). Each socket gets one kong-pdk ``plugin.GetStatus`` call over Kong's
MessagePack-RPC framing; exit status 0 when all answer, 1 (naming the first that did not)
otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys

import msgpack

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


class NotReady(Exception):
    """A plugin server's socket is missing, refuses, or does not answer in time."""


def check(socket_path: str, timeout: float) -> None:
    """One ``plugin.GetStatus`` round trip to the server at ``socket_path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(socket_path)
            conn.sendall(msgpack.packb([REQUEST, 1, "plugin.GetStatus", []]))
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    raise NotReady(f"{socket_path}: closed without an answer")
                unpacker.feed(data)
                for message in unpacker:
                    # [2, label, args] may come before the answer, as Kong reads them
                    # (kong/runloop/plugin_servers/rpc/mp_rpc.lua Rpc:call): serverPid.
                    if isinstance(message, list) and message[:1] == [NOTIFICATION]:
                        continue
                    if (
                        isinstance(message, list)
                        and len(message) == 4
                        and message[:2] == [RESPONSE, 1]
                    ):
                        if message[2] is not None:
                            raise NotReady(f"{socket_path}: {message[2]}")
                        return
                    raise NotReady(f"{socket_path}: unexpected answer {message!r:.80}")
        except (OSError, ValueError) as exc:  # missing, refused, timed out, garbled
            raise NotReady(f"{socket_path}: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="edge-plugins-ready",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sockets",
        nargs="+",
        metavar="SOCKET",
        help="a plugin server's Unix socket (pluginserver_<name>_socket)",
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for each server (default 2)"
    )
    args = parser.parse_args(argv)
    for path in args.sockets:
        try:
            check(path, args.timeout)
        except NotReady as exc:
            print(f"not ready: {exc}", file=sys.stderr)
            sys.exit(1)
    print(f"ready: {len(args.sockets)} plugin server(s) answer")


if __name__ == "__main__":
    main()
