"""edge_plugins.pdk_bridge against kong-pdk's own bridge, message for message.

The corpus (corpus_plugin.py, beside this file) runs through a server started with each bridge
(``--kong-pdk-bridge`` on the command line picks kong-pdk's), driven as Kong drives it
(tests/support/kong_client.py); the traffic Kong sees, ids left out, must be the same. The
differences that are the point of the runtime are pinned separately: the ``serverPid``
notification, instance ids, no server-wide lock before the first PDK call.
"""

from __future__ import annotations

import importlib.util
import json
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kong_client import Connection, Event, PluginServer, plugin_server, start_instance

CORPUS_PLUGIN = Path(__file__).resolve().parent / "corpus_plugin.py"
_corpus_spec = importlib.util.spec_from_file_location("bridge_corpus_plugin", CORPUS_PLUGIN)
assert _corpus_spec is not None and _corpus_spec.loader is not None
_corpus = importlib.util.module_from_spec(_corpus_spec)
_corpus_spec.loader.exec_module(_corpus)
WAIT_FIRST_SECONDS: float = _corpus.WAIT_FIRST_SECONDS
NAME = "bridge-corpus"
BRIDGES = {"kong-pdk": ["-g", "--no-lua-style", "--kong-pdk-bridge"], "edge": ["--no-lua-style"]}
EVIL = b"\xff\xfe\x80bad".decode("utf-8", "surrogateescape")  # bytes that are no UTF-8
ROUTE = {"id": "r-1", "name": "route", "paths": ["/p"], "strip_path": True}


def kong_answers(method: str, args: list[Any]) -> tuple[Any, str | None]:
    """What Kong's PDK answers each call of the corpus (value, error)."""
    if method == "kong.request.get_header":
        if args == ["x-missing"]:
            return None, "header x-missing: not found"
        return (EVIL if args == ["x-evil"] else f"value of {args[0]}"), None
    answers: dict[str, Any] = {
        "kong.request.get_headers": {"authorization": ["Bearer t"], "x-evil": [EVIL, "ok"]},
        "kong.request.get_query": {"a": ["1"], "flag": []},
        "kong.request.get_method": "GET",
        "kong.request.get_path": "/p",
        "kong.request.get_raw_query": "a=1&flag",
        "kong.request.get_raw_body": b"\x00\x01body\xff",
        "kong.client.get_ip": "10.0.0.1",
        "kong.client.get_forwarded_ip": "203.0.113.9",
        "kong.nginx.get_var": "request-id-1",
        "kong.router.get_route": ROUTE,
        "kong.router.get_service": {"id": "s-1", "host": "upstream", "port": 80},
        "kong.ctx.shared.get": {"route": ROUTE, "n": 1},
        "kong.service.response.get_status": 200,
        "kong.service.response.get_header": "nginx",
        "kong.response.get_status": 403,
        "kong.log.serialize": json.dumps({"request": {"uri": "/p", "evil": "x"}}),
    }
    return answers.get(method), None


@pytest.fixture(scope="module", params=sorted(BRIDGES))
def server(request: pytest.FixtureRequest) -> Iterator[PluginServer]:
    with plugin_server(BRIDGES[request.param], CORPUS_PLUGIN) as started:
        yield started


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, PluginServer]]:
    with (
        plugin_server(BRIDGES["kong-pdk"], CORPUS_PLUGIN) as kong_pdk,
        plugin_server(BRIDGES["edge"], CORPUS_PLUGIN) as edge,
    ):
        yield {"kong-pdk": kong_pdk, "edge": edge}


def _event_traffic(server: PluginServer, case: str, phase: str) -> list[Any]:
    conn = server.connect()
    status_error, status = conn.call(
        "plugin.StartInstance", {"Name": NAME, "Config": json.dumps({"case": case})}
    )
    assert status_error is None, status_error
    started = [("StartInstance", status["Name"], status["Config"], sorted(status))]
    return started + Event(conn, status["Id"], phase, kong_answers).run()


CORPUS = [
    ("null", "access"),
    ("request", "access"),
    ("entities", "access"),
    ("pdk_error", "access"),
    ("exit", "access"),
    ("error", "access"),
    ("bare_exit", "access"),
    ("non_utf8", "access"),
    ("guarded_failure", "access"),
    ("log_args", "access"),
    ("context", "access"),
    ("null", "response"),
    ("null", "log"),
]


@pytest.mark.parametrize(("case", "phase"), CORPUS)
def test_corpus_traffic_is_kong_pdks(
    servers: dict[str, PluginServer], case: str, phase: str
) -> None:
    ours = _event_traffic(servers["edge"], case, phase)
    theirs = _event_traffic(servers["kong-pdk"], case, phase)
    assert ours == theirs
    assert ours[-1][0] == "data"  # the event ran to its end: "ret" or a terminal call


def test_non_utf8_bytes_go_back_to_kong_unchanged(servers: dict[str, PluginServer]) -> None:
    traffic = _event_traffic(servers["edge"], "non_utf8", "access")
    sent = [d["Args"] for kind, d in traffic[1:] if kind == "data" and d != "ret"]
    assert sent[2] == ["x-evil-echo", EVIL]
    assert sent[3] == ["x-evil-all", EVIL + "ok"]


def test_the_same_pooled_greenlet_starts_each_event_in_a_fresh_context(
    servers: dict[str, PluginServer],
) -> None:
    for _ in range(3):
        traffic = _event_traffic(servers["edge"], "context", "access")
        assert traffic[1:3] == [
            ("HandleEvent", "access"),
            ("data", {"Method": "kong.service.request.set_header", "Args": ["x-context", "fresh"]}),
        ]


def test_errors_kong_matches_are_kong_pdks_text(servers: dict[str, PluginServer]) -> None:
    def errors(server: PluginServer) -> list[Any]:
        conn = server.connect()
        return [
            conn.call("plugin.HandleEvent", {"InstanceId": 987654321, "EventName": "access"}),
            conn.call("plugin.Step", {"EventId": 987654321, "Data": None}),
            conn.call("plugin.CloseInstance", 987654321),
            conn.call("plugin.StartInstance", {"Name": "other", "Config": "{}"}),
            conn.call("other.Method", 1),
        ]

    ours, theirs = errors(servers["edge"]), errors(servers["kong-pdk"])
    # mp_rpc.lua Rpc:handle_event restarts the instance on "no plugin instance".
    assert ours[0] == ("no plugin instance #987654321", None)
    assert ours == theirs


def test_status_and_close_answer_as_kong_pdk(servers: dict[str, PluginServer]) -> None:
    def shapes(server: PluginServer) -> list[Any]:
        conn = server.connect()
        iid = start_instance(conn, NAME, {"case": "null"})
        _, status = conn.call("plugin.GetStatus")
        plugin = status["Plugins"][NAME]
        instances = [i for i in plugin["Instances"] if i["Id"] == iid]
        _, closed = conn.call("plugin.CloseInstance", iid)
        return [sorted(status), sorted(plugin), instances[0]["Config"], closed["Config"]]

    assert shapes(servers["edge"]) == shapes(servers["kong-pdk"])


def test_concurrent_events_interleaved_see_the_same_traffic(
    servers: dict[str, PluginServer],
) -> None:
    def interleaved(server: PluginServer) -> list[list[Any]]:
        conns = [server.connect() for _ in range(4)]
        cases = ["request", "entities", "exit", "log_args"]
        events = [
            Event(conn, start_instance(conn, NAME, {"case": case}), "access", kong_answers)
            for conn, case in zip(conns, cases, strict=True)
        ]
        while not all(e.done for e in events):
            for event in events:
                if not event.done:
                    event.advance()
        return [e.traffic for e in events]

    assert interleaved(servers["edge"]) == interleaved(servers["kong-pdk"])


def _readable(conn: Connection, within: float = 0.0) -> bool:
    return bool(select.select([conn.sock], [], [], within)[0])


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
def test_an_event_waiting_before_its_first_call_holds_up_no_other(
    servers: dict[str, PluginServer], bridge: str
) -> None:
    server = servers[bridge]
    slow_conn, quick_conn = server.connect(), server.connect()
    slow = Event(
        slow_conn, start_instance(slow_conn, NAME, {"case": "wait_first"}), "access", kong_answers
    )
    # the slow event first, as the server reads it: two sockets give no order of their own
    time.sleep(WAIT_FIRST_SECONDS / 4)
    quick = Event(
        quick_conn, start_instance(quick_conn, NAME, {"case": "request"}), "access", kong_answers
    )
    quick.advance()  # the quick handler's first call
    # kong-pdk writes the slow call as it drops its lock, a moment around the quick one's
    # write; ours sends it WAIT_FIRST_SECONDS later (corpus_plugin.py wait_first): half of
    # that tells them apart, with room for a loaded machine's scheduling on either side.
    slow_answered_first = _readable(slow_conn, within=WAIT_FIRST_SECONDS / 2)
    slow.run()
    quick.run()
    # kong-pdk holds a server-wide lock (kong_pdk/server.py e_lock) from HandleEvent to the
    # handler's first PDK call: the quick event is answered only after the slow one's call.
    assert slow_answered_first is (bridge == "kong-pdk")


def test_every_connection_starts_with_the_server_pid(servers: dict[str, PluginServer]) -> None:
    for bridge, server in servers.items():
        conns = [server.connect() for _ in range(2)]
        for conn in conns:
            start_instance(conn, NAME, {"case": "null"})
            conn.call("plugin.GetStatus")
        notes = [conn.notifications for conn in conns]
        if bridge == "kong-pdk":
            assert notes == [[], []]
        else:
            # plugin.lua rpc_notifications:serverPid
            assert notes == [[[2, "serverPid", server.process.pid]]] * 2


def test_instance_ids_of_two_server_processes_do_not_meet() -> None:
    ids = []
    for _ in range(2):
        with plugin_server(BRIDGES["edge"], CORPUS_PLUGIN) as server:
            ids.append(start_instance(server.connect(), NAME, {"case": "null"}))
    # kong-pdk starts every process at 0: a worker's stale id names the new process's
    # first instance, whatever its config.
    assert ids[0] != ids[1] and 0 not in ids
