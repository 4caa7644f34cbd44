"""``kong.ctx.shared``: ``kong/pdk/ctx.lua`` as ``kong/runloop/plugin_servers/plugin.lua``
exposes it to external plugins (get/set, keyed by any value, shared by all plugins)."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import RequestContext
from kong_harness.pdk.table import arg_at, pdk_method


# kong.ctx.shared: plugin.lua exposes get/set, keyed by any value, shared by all plugins
@pdk_method("kong.ctx.shared.get")
def _shared_get(ctx: RequestContext, args: list[Any]) -> Any:
    return ctx.ctx_shared.get(arg_at(args, 0))


@pdk_method("kong.ctx.shared.set")
def _shared_set(ctx: RequestContext, args: list[Any]) -> None:
    ctx.ctx_shared[arg_at(args, 0)] = arg_at(args, 1)
