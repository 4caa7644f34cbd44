"""Phase checks: ``kong/pdk/private/phases.lua``, reduced to the phases external plugins have."""

from __future__ import annotations

from kong_harness.pdk.context import LuaError, RequestContext

# Phase groups from kong/pdk/private/phases.lua, reduced to the phases external plugins have.
ALL = frozenset({"rewrite", "access", "response", "log"})
REQUEST = ALL
BEFORE_CONTENT = frozenset({"rewrite", "access", "response"})
ACCESS_REWRITE = frozenset({"rewrite", "access"})
REWRITE_ACCESS_HEADER = frozenset({"rewrite", "access", "response"})
HEADER_BODY_LOG = frozenset({"response", "log"})
ROUTER = frozenset({"access", "response", "log"})
LOG_ONLY = frozenset({"log"})
RESPONSE_ONLY = frozenset({"response"})


_PHASE_ORDER = ("rewrite", "access", "response", "log")


def check_phase(ctx: RequestContext, allowed: frozenset[str]) -> None:
    """kong/pdk/private/phases.lua ``check_phase``."""
    if ctx.phase not in allowed:
        only = ", ".join(p for p in _PHASE_ORDER if p in allowed)
        raise LuaError(f"function cannot be called in {ctx.phase} phase (only in: {only})")
