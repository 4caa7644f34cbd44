"""``typical-rate-limit``: a Redis fixed window the way most kong-pdk plugins do it.

kong-pdk's defaults (threads mode, Lua-style ``value, err`` returns); ``INCR`` on
``<prefix>:<subject>:<window>`` and ``EXPIRE`` on the window's first hit (two Redis round
trips then, one otherwise); the subject from ``kong.ctx.shared`` (typical-jwt) or the
client IP; one ``kong.response.set_header`` per rate-limit header. 3 round trips per
admitted request with a subject.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

NAME = os.environ.get("TYPICAL_NAME", "typical-rate-limit")  # the bench runs a gevent copy too
version = "0.1.0"
priority = 910  # edge-rate-limit's
Schema = (
    {"redis_url": {"type": "string", "required": True}},
    {"key_prefix": {"type": "string", "default": "typical-rl"}},
    {"limit": {"type": "integer", "required": True}},
    {"window_seconds": {"type": "integer", "default": 60}},
)

_clients: dict[str, redis.Redis] = {}


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        url = config["redis_url"]
        self.redis = _clients.setdefault(url, redis.Redis.from_url(url))

    def access(self, kong: Any) -> None:
        cfg = self.config
        subject, _ = kong.ctx.shared.get("subject")
        if not subject:
            subject, _ = kong.client.get_forwarded_ip()
        window = int(time.time()) // cfg["window_seconds"]
        key = f"{cfg['key_prefix']}:{subject}:{window}"
        count = self.redis.incr(key)
        if count == 1:
            self.redis.expire(key, cfg["window_seconds"])
        remaining = max(0, cfg["limit"] - count)
        if count > cfg["limit"]:
            kong.response.exit(429, {"message": "API rate limit exceeded"})
            return
        kong.response.set_header("X-RateLimit-Limit", str(cfg["limit"]))
        kong.response.set_header("X-RateLimit-Remaining", str(remaining))


if __name__ == "__main__":
    from kong_pdk.cli import start_dedicated_server

    start_dedicated_server(NAME, Plugin, version, priority, Schema)
