"""The guard every plugin phase method goes through.

The plugin servers run on :mod:`edge_plugins.pdk_bridge`, or on kong-pdk 0.36's own bridge
with ``--kong-pdk-bridge`` (``kong_pdk/server.py``), which runs a phase handler in a
greenlet and talks to it over a channel:

* ``handle_event`` holds the server-wide ``e_lock`` until the handler's *first* PDK call.
  If the handler raises before that call, nothing is ever put on the channel and the lock
  is never released: the **whole server** hangs, every later request with it.
* If the handler raises after a PDK call, ``step`` waits forever for the next message and
  Kong's request hangs until its socket timeout.
* After a terminal call (``kong.response.exit``/``error``) the event is dropped, so the
  handler's final ``ch.put("ret")`` blocks forever in gevent mode: one leaked greenlet per
  rejected request.

edge_plugins.pdk_bridge has none of these (a raising handler is an RPC error, Kong goes on
without the plugin; a terminal call ends the event and the greenlet returns to its pool),
but Kong's fail-open is not every plugin's policy, and the guard keeps the plugins correct
on both bridges. It holds no state of its own: handlers of many requests run through it
at once, interleaved at every PDK call and every wait (there is no server-wide lock on
either bridge after the first PDK call, none at all on ours).

The guard catches everything, logs it, and applies the plugin's declared failure policy:
fail closed answers with Kong's own JSON 500 (``kong.response.error``), fail open returns
and lets Kong proceed. After a terminal call it ends the greenlet quietly instead of letting
kong-pdk park it. Plugins end a request with :func:`exit_request` or :func:`error_request`,
never with a bare ``kong.response.exit``/``error``, so the guard knows the event is over.

The failure policy governs requests a plugin could not *decide*. Once it has decided to
reject, no later failure may let the request through: a plugin builds and sends its answer
inside :func:`answering_rejection`, and a failure there reaches the guard as
:class:`DecidedRejection`, which it answers with Kong's error of the decided status (and
the given headers) whatever the policy.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from edge_plugins.responses import default_message

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


class DecidedRejection(Exception):
    """A request the plugin decided to reject, whose own answer could not be built or sent.

    ``headers`` are the few the fallback answer must keep (``Retry-After``): plain strings
    the plugin had before it started building the failed answer.
    """

    def __init__(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"decided rejection {status} could not be answered")
        self.status = status
        self.headers = dict(headers or {})


@contextlib.contextmanager
def answering_rejection(status: int, headers: Mapping[str, str] | None = None) -> Iterator[None]:
    """Build and send an already decided rejection: a failure inside becomes
    :class:`DecidedRejection` (chained to the cause), never the failure policy's to judge.
    ``RequestEnded`` (the answer was sent) is a ``BaseException`` and passes untouched."""
    try:
        yield
    except Exception as exc:
        raise DecidedRejection(status, headers) from exc


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
    before them would cut them off on the way to Kong (see :mod:`edge_plugins.responses`).
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
        kong.response.error(
            status, default_message(status) if message is None else message, dict(headers)
        )
    elif message is None:
        kong.response.error(status)
    else:
        kong.response.error(status, message)
    raise RequestEnded


def _answer_rejection(kong: Any, rejection: DecidedRejection, plugin_name: str) -> bool:
    """Answer with Kong's own error of the decided status, without the headers if that
    fails; whether an answer was sent.

    Each attempt is a terminal call that raised before reaching Kong (a call that reaches
    it never returns to the plugin), so the next one is not a second answer.
    """
    attempts: list[tuple[Any, ...]] = [(rejection.status,)]
    if rejection.headers:
        attempts.insert(0, (rejection.status, default_message(rejection.status), rejection.headers))
    for args in attempts:
        try:
            kong.response.error(*args)
            return True
        except Exception:  # the guard is the last boundary: log, then end the event quietly
            log.exception("plugin %s could not answer its rejection with %s", plugin_name, args[:1])
    return False  # nothing reached Kong: the handler must return for kong-pdk's "ret"


def _end_greenlet() -> None:
    """Finish the current handler greenlet without reaching kong-pdk's blocking ``put``.

    Only kong-pdk's handlers run in a ``gevent.Greenlet`` (its ``gspawn``);
    edge_plugins.pdk_bridge's pooled workers are plain greenlets that must return to their
    pool, so for them this does nothing and the handler returns."""
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
        except DecidedRejection as rejection:
            plugin_name = type(self).__module__
            log.error(
                "plugin %s failed answering its %d in %s phase; answering Kong's error",
                plugin_name,
                rejection.status,
                phase,
                exc_info=rejection.__cause__,
            )
            if phase not in _EXIT_PHASES or not _answer_rejection(kong, rejection, plugin_name):
                return
        except Exception:
            plugin_name = type(self).__module__
            log.exception("plugin %s failed in %s phase", plugin_name, phase)
            if phase not in _EXIT_PHASES or self.failure_policy is FailurePolicy.OPEN:
                return
            try:
                # Kong's own error response: JSON (or what Accept asks for), with the
                # request id, "An unexpected error occurred" (kong/pdk/response.lua).
                kong.response.error(500)
            except Exception:  # the last boundary: nothing else may raise into kong-pdk
                log.exception("plugin %s could not fail closed", plugin_name)
                return
        _end_greenlet()

    return wrapper  # type: ignore[return-value]  # same call signature as method, untyped for mypy
