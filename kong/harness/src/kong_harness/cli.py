"""``kong-harness``: run the harness gateway in the foreground (``make run`` uses it)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from kong_harness.conf import KongConfError, load_kong_conf
from kong_harness.gateway import Gateway, GatewayConfigError, GatewaySettings, serve
from kong_harness.kong_api import admin_app, listeners, status_app
from kong_harness.plugin_servers import PluginServerError
from kong_harness.schema import KongSchemaViolation


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kong-harness", description=__doc__)
    parser.add_argument("--conf", default="kong/kong.conf", help="kong.conf to read")
    parser.add_argument(
        "--declarative-config",
        default="kong/kong.yml",
        help="declarative kong.yml (_format_version 3.0)",
    )
    parser.add_argument(
        "--prefix", default=None, help="local prefix replacing kong.conf's prefix (sockets)"
    )
    parser.add_argument(
        "--bin-dir", default=None, help="directory holding the plugin server commands"
    )
    parser.add_argument("--listen", default="0.0.0.0:8000", help="proxy address host:port")
    parser.add_argument("--workers", type=int, default=2, help="simulated nginx workers")
    parser.add_argument(
        "--plugin-timeout",
        type=float,
        default=60.0,
        help="plugin server socket timeout in seconds (Kong: 60)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("kong_harness")
    started = time.monotonic()
    conf = load_kong_conf(args.conf)
    if args.prefix or args.bin_dir:
        if args.prefix:
            Path(args.prefix).mkdir(parents=True, exist_ok=True)
        conf = conf.with_local_paths(args.prefix, args.bin_dir)
    gateway = Gateway(
        GatewaySettings(
            kong_conf=conf,
            declarative_config=Path(args.declarative_config),
            workers=args.workers,
            plugin_timeout=args.plugin_timeout,
        )
    )
    host, _, port = args.listen.rpartition(":")
    # kong.conf status_listen / admin_listen ("off": none), Kong's defaults when unset
    own = listeners(conf.values)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
        await gateway.plugin_servers_ready()  # what a deployment's readiness check does
        servers = []
        apps = {"status": status_app(gateway), "admin": admin_app(gateway)}
        for kind, addresses in own.items():
            for listen in addresses:
                ready = asyncio.Event()
                servers.append(
                    asyncio.create_task(
                        serve(
                            apps[kind],
                            listen.host,
                            listen.port,
                            ready,
                            log_level=args.log_level,
                            stats=gateway.stats,
                        )
                    )
                )
                await ready.wait()
                log.info("%s API listening on %s:%d", kind, listen.host, listen.port)
        ready = asyncio.Event()
        servers.append(
            asyncio.create_task(
                serve(gateway, host or "0.0.0.0", int(port), ready, log_level=args.log_level)
            )
        )
        await ready.wait()
        log.info("proxy listening on %s (ready in %.2fs)", args.listen, time.monotonic() - started)
        await asyncio.wait(
            [*servers, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for server in servers:
            server.cancel()
        for server in servers:
            with contextlib.suppress(asyncio.CancelledError):
                await server
    finally:
        await gateway.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request
    try:
        sys.exit(asyncio.run(run(args)))
    except (KongConfError, GatewayConfigError, PluginServerError, KongSchemaViolation) as exc:
        logging.getLogger("kong_harness").error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
