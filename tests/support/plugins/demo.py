"""``edge-demo``: a test-only plugin that exercises the harness (run as a script); nothing
ships it.

Its config selects what one request does, so the harness's tests can pin Kong's behaviour
(headers reaching client and upstream, exits stopping later plugins, log snapshots) and
kong-pdk's failure modes (raising before/after the first PDK call, hanging) with one plugin.
``EDGE_DEMO_NAME`` / ``EDGE_DEMO_PRIORITY`` let a test run a second copy under another name
to check priority ordering.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from edge_plugins.guard import FailurePolicy, exit_request, guarded

NAME = os.environ.get("EDGE_DEMO_NAME", "edge-demo")
version = "0.1.0"
priority = int(os.environ.get("EDGE_DEMO_PRIORITY", "1000"))

Schema = (
    # "noop": no PDK call at all; "headers": one upstream + one response header (2 calls).
    {"mode": {"type": "string", "default": "headers", "one_of": ["noop", "headers", "echo"]}},
    {"header_name": {"type": "string", "default": "X-Edge-Demo", "len_min": 1}},
    {"greeting": {"type": "string", "default": "hello"}},
    {"exit_status": {"type": "integer", "between": [200, 599]}},
    {
        "fail": {
            "type": "string",
            "default": "none",
            "one_of": ["none", "start_instance", "before_pdk", "after_pdk", "hang_before_pdk"],
        }
    },
    {"failure_policy": {"type": "string", "default": "closed", "one_of": ["closed", "open"]}},
    {"unguarded": {"type": "boolean", "default": False}},
    {"log_serialize": {"type": "boolean", "default": False}},
)


class DemoFailure(RuntimeError):
    """The failure the config asked for."""


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        if config.get("fail") == "start_instance":
            raise DemoFailure("configured to fail in StartInstance")
        self.config = config
        self.failure_policy = FailurePolicy(config.get("failure_policy") or "closed")
        if config.get("unguarded"):
            # Only for the test that shows why the guard exists.
            self.access = lambda kong: self._access(kong)  # type: ignore[method-assign]

    @guarded
    def access(self, kong: Any) -> None:
        self._access(kong)

    def _access(self, kong: Any) -> None:
        cfg = self.config
        if cfg["fail"] == "before_pdk":
            raise DemoFailure("configured to fail before the first PDK call")
        if cfg["fail"] == "hang_before_pdk":
            time.sleep(3600)
        if cfg["mode"] == "noop":
            return
        if cfg["mode"] == "echo":
            self._echo(kong)
            return
        name = cfg["header_name"]
        kong.service.request.set_header(name, cfg["greeting"])
        if cfg["fail"] == "after_pdk":
            raise DemoFailure("configured to fail after the first PDK call")
        # Unset optional fields are absent, not null, in what Kong sends (plugins_iterator.lua).
        if cfg.get("exit_status") is not None:
            exit_request(kong, cfg["exit_status"], {"message": cfg["greeting"]}, {name: "exit"})
        kong.response.set_header(name, cfg["greeting"])

    def _echo(self, kong: Any) -> None:
        """Answer with what the PDK reports about the request (for value-shaping tests)."""
        report = {
            "headers": kong.request.get_headers(),
            "query": kong.request.get_query(),
            "raw_body": kong.request.get_raw_body().decode("latin-1"),
            "method": kong.request.get_method(),
            "path": kong.request.get_path(),
            "raw_query": kong.request.get_raw_query(),
            "shared": kong.ctx.shared.get("edge-demo"),
        }
        exit_request(kong, 200, report)

    @guarded
    def log(self, kong: Any) -> None:
        if self.config["log_serialize"]:
            entry = kong.log.serialize()
            kong.log.notice("serialized " + json.dumps(json.loads(entry), sort_keys=True))


if __name__ == "__main__":
    from edge_plugins.server import serve

    serve(sys.modules[__name__])
