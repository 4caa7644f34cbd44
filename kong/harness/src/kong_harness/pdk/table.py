"""The PDK table: every PDK method the harness answers, with the phases its
``check_phase`` allows and the typed Step it is answered with (``get_step_method`` in
``kong/runloop/plugin_servers/rpc/mp_rpc.lua``). The namespace modules fill it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kong_harness.pdk.context import LuaError, RequestContext
from kong_harness.pdk.private.phases import ALL, check_phase

PdkFunction = Callable[[RequestContext, list[Any]], Any]
PDK: dict[str, PdkFunction] = {}
PHASES_OF: dict[str, frozenset[str]] = {}  # the phases each PDK function's check_phase allows
STEP_METHODS = {  # mp_rpc.lua get_step_method
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
    "kong.router.get_route": "plugin.StepRoute",
    "kong.router.get_service": "plugin.StepService",
}


def pdk_method(name: str, phases: frozenset[str] = ALL) -> Callable[[PdkFunction], PdkFunction]:
    """Register the decorated function as PDK method ``name``, behind Kong's phase check."""

    def register(fn: PdkFunction) -> PdkFunction:
        def checked(ctx: RequestContext, args: list[Any]) -> Any:
            check_phase(ctx, phases)
            return fn(ctx, args)

        PDK[name] = checked
        PHASES_OF[name] = phases
        return fn

    return register


def arg_at(args: list[Any], i: int) -> Any:
    """Argument ``i``, or ``None`` (Lua ``nil``) when the call has fewer."""
    return args[i] if len(args) > i else None


def string_arg_at(args: list[Any], i: int, error: str) -> str:
    """Argument ``i``, which Kong's PDK requires to be a string (else it throws ``error``)."""
    value = arg_at(args, i)
    if not isinstance(value, str):
        raise LuaError(error)
    return value


def saved_value(ctx: RequestContext, key: str) -> Any:
    """What the log phase's timer saved under ``key`` (plugin.lua), ``None`` outside it."""
    return ctx.snapshot[key] if ctx.snapshot is not None else None


def attribute_getter(name: str, attribute: str, phases: frozenset[str] = ALL) -> None:
    """Register PDK method ``name`` as a getter answering one field of the request context."""

    def get(ctx: RequestContext, args: list[Any]) -> Any:
        check_phase(ctx, phases)
        return getattr(ctx, attribute)

    PDK[name] = get
    PHASES_OF[name] = phases
