"""``kong.router``: ``kong/pdk/router.lua``."""

from __future__ import annotations

from typing import Any

from kong_harness.pdk.context import RequestContext
from kong_harness.pdk.private.phases import ROUTER
from kong_harness.pdk.table import pdk_method


# kong.router.*
@pdk_method("kong.router.get_route", ROUTER)
def _get_route(ctx: RequestContext, args: list[Any]) -> Any:
    return dict(ctx.route) if ctx.route else None


@pdk_method("kong.router.get_service", ROUTER)
def _get_service(ctx: RequestContext, args: list[Any]) -> Any:
    return dict(ctx.service) if ctx.service else None
