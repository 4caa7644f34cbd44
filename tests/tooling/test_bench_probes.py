"""The bench's runtime floor (tests/bench/plugins/chain_probe.py) makes the edge chain's PDK
calls: each probe, driven like a plugin, makes the calls its edge plugin declares for the
chain's happy path (``PDK_CALLS``, which kong-plugins/tests/test_plugin_reference.py pins
against the plugins themselves). ``make bench`` also compares their round trips per
request on the run."""

from __future__ import annotations

from types import ModuleType

import pytest

from edge_plugins import edge_jwt, edge_rate_limit, edge_trace
from edge_plugins.shared_context import SHARED_SUBJECT_KEY
from tests.bench.plugins import chain_probe
from tests.support.recording_kong import RecordingKong


def _declared(module: ModuleType, outcome: str) -> tuple[str, ...]:
    return next(c.calls for c in module.PDK_CALLS if c.outcome == outcome)


# edge-rate-limit in the chain keys by the subject edge-jwt shared: its key call is
# ``kong.ctx.shared.get`` where the declared "admitted" case names the client address.
CHAIN_CALLS = {
    "edge-trace": _declared(edge_trace, "any request"),
    "edge-jwt": _declared(edge_jwt, "valid token"),
    "edge-rate-limit": tuple(
        "kong.ctx.shared.get" if call == "kong.client.get_forwarded_ip" else call
        for call in _declared(edge_rate_limit, "admitted")
    ),
}


@pytest.mark.parametrize("plugin", sorted(CHAIN_CALLS))
def test_each_probe_makes_its_plugins_chain_calls(plugin: str) -> None:
    kong = RecordingKong()
    chain_probe.Plugin({"plugin": plugin}).access(kong)
    assert tuple(kong.methods) == CHAIN_CALLS[plugin]


def test_the_probes_share_the_subject_under_edge_jwts_key() -> None:
    kong = RecordingKong()
    chain_probe.Plugin({"plugin": "edge-jwt"}).access(kong)
    chain_probe.Plugin({"plugin": "edge-rate-limit"}).access(kong)
    assert kong.args("kong.ctx.shared.set")[0] == SHARED_SUBJECT_KEY
    assert kong.args("kong.ctx.shared.get")[0] == SHARED_SUBJECT_KEY


def test_with_log_declares_an_idle_log_phase_like_export_spans() -> None:
    assert hasattr(chain_probe.PluginWithLog, "log") and not hasattr(chain_probe.Plugin, "log")
    assert hasattr(edge_trace.Plugin, "log") and not hasattr(edge_trace.AccessOnlyPlugin, "log")
    assert chain_probe.PluginWithLog({"plugin": "edge-trace"}).log(RecordingKong()) is None


def test_the_probes_stand_in_the_chains_order() -> None:
    """The per-plugin row subtracts the runtime floor's processes from the chain's, one by
    one: probe ``i`` must stand for plugin ``i`` at the same priority."""
    from tests.bench import chain

    assert [plugin for plugin, _ in chain.PROBES.values()] == list(chain.OURS)
    plugins = (edge_trace, edge_jwt, edge_rate_limit)
    assert [module.NAME for module in plugins] == list(chain.OURS)
    assert [priority for _, priority in chain.PROBES.values()] == [m.priority for m in plugins]
