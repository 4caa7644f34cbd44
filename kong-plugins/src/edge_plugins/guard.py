"""The guard every plugin phase method goes through.

kong-pdk 0.36 (``kong_pdk/server.py``) runs a phase handler in a greenlet and talks to it
over a channel:

* ``handle_event`` holds the server-wide ``e_lock`` until the handler's *first* PDK call.
  If the handler raises before that call, nothing is ever put on the channel and the lock
  is never released: the **whole server** hangs, every later request with it.
* If the handler raises after a PDK call, ``step`` waits forever for the next message and
  Kong's request hangs until its socket timeout.
* After a terminal call (``kong.response.exit``/``error``) the event is dropped, so the
  handler's final ``ch.put("ret")`` blocks forever in gevent mode: one leaked greenlet per
  rejected request.

The guard catches everything, logs it, and applies the plugin's declared failure policy:
fail closed answers with Kong's own JSON 500 (``kong.response.error``), fail open returns
and lets Kong proceed. After a terminal call it ends the greenlet quietly instead of letting
kong-pdk park it. Plugins end a request with :func:`exit_request` or :func:`error_request`,
never with a bare ``kong.response.exit``/``error``, so the guard knows the event is over.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from edge_plugins.http_errors import default_message

log = logging.getLogger("edge_plugins.guard")

# Phases in which Kong allows kong.response.exit/error (kong/pdk/response.lua:
# check_phase(rewrite_access_header)); a failure elsewhere can only be logged.
_EXIT_PHASES = frozenset({"rewrite", "access"})


class FailurePolicy(enum.StrEnum):
    """What a plugin does when it cannot decide (a bug or an infrastructure fault)."""

    CLOSED = "closed"  # answer 5xx: the request must not reach the upstream undecided
    OPEN = "open"  # let the request through without this plugin's effect


class RequestEnded(BaseException):
    """Raised after a terminal PDK call: Kong sends no reply, so the handler must stop."""


def exit_request(
    kong: Any,
    status: int,
    body: Mapping[str, Any] | str | bytes | None = None,
    headers: Mapping[str, str | list[str]] | None = None,
) -> None:
    """End the request with ``kong.response.exit`` and unwind the handler.

    ``kong.response.exit`` is terminal: Kong answers the client and never replies to the
    plugin server (kong/runloop/plugin_servers/rpc/mp_rpc.lua, kong/pdk/response.lua).
    With headers, a missing body is sent as ``""`` (the same empty response): a ``None``
    before them would cut them off on the way to Kong (see :mod:`edge_plugins.http_errors`).
    """
    if headers:
        kong.response.exit(status, "" if body is None else body, dict(headers))
    else:
        kong.response.exit(status, body)
    raise RequestEnded


def error_request(
    kong: Any,
    status: int,
    message: str | None = None,
    headers: Mapping[str, str | list[str]] | None = None,
) -> None:
    """End the request with ``kong.response.error`` and unwind the handler.

    Kong builds the body itself (kong/pdk/response.lua ``error``, kong/tools/http.lua): JSON
    ``{"message": …, "request_id": …}`` or what the client's ``Accept`` asks for, so plugin
    rejections look like Kong's own errors and carry the request id. Terminal, like ``exit``.
    With headers, a missing message is sent as Kong's own default text, never as ``None``.
    """
    if headers:
        kong.response.error(status, default_message(status) if message is None else message,
                            dict(headers))
    elif message is None:
        kong.response.error(status)
    else:
        kong.response.error(status, message)
    raise RequestEnded


def _end_greenlet() -> None:
    """Finish the current handler greenlet without reaching kong-pdk's blocking ``put``."""
    try:
        import gevent
    except ImportError:  # pragma: no cover - kong-pdk always ships gevent
        return
    if isinstance(gevent.getcurrent(), gevent.Greenlet):
        raise gevent.GreenletExit


Handler = TypeVar("Handler", bound=Callable[..., None])


def guarded(method: Handler) -> Handler:
    """Wrap a phase method (``access``, ``log``, …) of a plugin class.

    The plugin instance must have a ``failure_policy`` attribute (a :class:`FailurePolicy`).
    """
    phase = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, kong: Any) -> None:
        try:
            method(self, kong)
            return
        except RequestEnded:
            pass
        except Exception:
            plugin_name = type(self).__module__
            log.exception("plugin %s failed in %s phase", plugin_name, phase)
            if phase not in _EXIT_PHASES or self.failure_policy is FailurePolicy.OPEN:
                return
            try:
                # Kong's own error response: JSON (or what Accept asks for), with the
                # request id, "An unexpected error occurred" (kong/pdk/response.lua).
                kong.response.error(500)
            except Exception:
                log.exception("plugin %s could not fail closed", plugin_name)
                return
        _end_greenlet()

    return wrapper  # type: ignore[return-value]
