"""``bridge-corpus``: a test-only plugin whose config names one behaviour of the corpus the
differential test (kong-plugins/tests/bridge/test_differential.py) drives through both bridges.

Each case makes the PDK calls of one kind of plugin behaviour: every PDK namespace the
shipped plugins and the bench plugins use, errors answered by Kong, terminal exits,
log-phase calls with arguments kong-pdk cleans, non-UTF-8 strings, a guarded failure.
What a call answers is echoed into a later call, so a value the bridge altered shows in
the traffic.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any

import gevent
from kong_pdk.exception import PDKException

from edge_plugins.guard import FailurePolicy, error_request, exit_request, guarded

NAME = "bridge-corpus"
version = "0.1.0"
priority = 1000
Schema = ({"case": {"type": "string", "required": True}},)


class CorpusFailure(RuntimeError):
    """The failure the ``guarded_failure`` case asks for."""


def _null(kong: Any) -> None:
    return None


def _request(kong: Any) -> None:
    headers = kong.request.get_headers(1000)
    one = kong.request.get_header("authorization")
    query = kong.request.get_query()
    facts = [
        kong.request.get_method(),
        kong.request.get_path(),
        kong.request.get_raw_query(),
        kong.client.get_ip(),
        kong.client.get_forwarded_ip(),
        kong.nginx.get_var("request_id"),
    ]
    body = kong.request.get_raw_body()
    kong.service.request.set_header("x-seen", f"{sorted(headers)}|{one}|{sorted(query)}")
    kong.service.request.set_headers({"x-facts": [str(f) for f in facts], "x-gone": []})
    kong.response.set_header("x-body", body.hex() if isinstance(body, bytes) else repr(body))
    kong.response.set_headers({"x-one": "1", "x-two": ["2", "3"]})


def _entities(kong: Any) -> None:
    route = kong.router.get_route()
    service = kong.router.get_service()
    kong.ctx.shared.set("corpus.key", {"route": route, "n": 1})
    shared = kong.ctx.shared.get("corpus.key")
    kong.service.request.set_header("x-entities", repr((route, service, shared)))


def _pdk_error(kong: Any) -> None:
    try:
        kong.request.get_header("x-missing")
    except PDKException as exc:
        kong.service.request.set_header("x-error", str(exc))


def _exit(kong: Any) -> None:
    kong.request.get_header("x-before")
    exit_request(kong, 403, {"message": "no"}, {"X-Why": "corpus"})


def _error(kong: Any) -> None:
    error_request(kong, 429, "slow down", {"Retry-After": "7"})


def _bare_exit(kong: Any) -> None:
    kong.response.exit(204)  # no guard helper: the handler runs on after the call
    kong.log.notice("after exit")


def _non_utf8(kong: Any) -> None:
    value = kong.request.get_header("x-evil")
    headers = kong.request.get_headers()
    kong.service.request.set_header("x-evil-echo", value)
    kong.response.set_header("x-evil-all", "".join(headers["x-evil"]))


def _guarded_failure(kong: Any) -> None:
    kong.request.get_header("x-before")
    raise CorpusFailure("a bug after the first PDK call")


def _log_args(kong: Any) -> None:
    kong.log.err("text", 1, None, 2.5, True, {"a": 1}, [1, 2], b"raw", ("t",))
    kong.log.notice("one")
    kong.log("bare log")


def _upstream_answer(kong: Any) -> None:
    status = kong.service.response.get_status()
    server = kong.service.response.get_header("server")
    kong.response.set_header("x-upstream", f"{status} {server}")


# Set by every event of the ``context`` case after reading it: a pooled greenlet that kept
# its context would show the previous event's value.
SEEN = contextvars.ContextVar("corpus_seen", default="fresh")


def _context(kong: Any) -> None:
    kong.service.request.set_header("x-context", SEEN.get())
    SEEN.set("left by a previous event")


# Long enough that a loaded machine's scheduling delays (tens of ms) never reach it: the
# differential test tells the bridges apart by what arrives within half of it.
WAIT_FIRST_SECONDS = 1.0


def _wait_first(kong: Any) -> None:
    gevent.sleep(WAIT_FIRST_SECONDS)  # Redis or a key fetch before the first PDK call
    kong.request.get_header("x-after-wait")


CASES = {
    "context": _context,
    "wait_first": _wait_first,
    "null": _null,
    "request": _request,
    "entities": _entities,
    "pdk_error": _pdk_error,
    "exit": _exit,
    "error": _error,
    "bare_exit": _bare_exit,
    "non_utf8": _non_utf8,
    "guarded_failure": _guarded_failure,
    "log_args": _log_args,
    "upstream_answer": _upstream_answer,
}


def _log_phase(kong: Any) -> None:
    serialized = kong.log.serialize()
    status = kong.response.get_status()
    kong.log.notice("serialized ", len(serialized), " ", status)


class Plugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.case = CASES[config["case"]]
        self.failure_policy = FailurePolicy.CLOSED

    @guarded
    def access(self, kong: Any) -> None:
        self.case(kong)

    @guarded
    def response(self, kong: Any) -> None:
        _upstream_answer(kong)

    @guarded
    def log(self, kong: Any) -> None:
        _log_phase(kong)


if __name__ == "__main__":
    from edge_plugins.server import serve

    serve(sys.modules[__name__])
