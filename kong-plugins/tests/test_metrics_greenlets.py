"""``edge_plugin_greenlets``: the live greenlets of a plugin-server process, at scrape time."""

from __future__ import annotations

import weakref

import gevent
import gevent.event

from edge_plugins.metrics_server import GreenletCollector


def _gauge() -> float:
    (family,) = GreenletCollector().collect()
    assert family.name == "edge_plugin_greenlets"
    (sample,) = family.samples
    return sample.value


def test_the_gauge_counts_greenlets_while_they_live() -> None:
    release = gevent.event.Event()
    gevent.sleep(0)
    idle = _gauge()
    parked = [gevent.spawn(release.wait) for _ in range(3)]
    gevent.sleep(0)  # let them start and park
    assert _gauge() == idle + 3
    release.set()
    gevent.joinall(parked, timeout=5)
    assert _gauge() == idle


class _Referent:
    pass


def test_a_dead_weak_proxy_on_the_heap_does_not_break_the_scrape() -> None:
    referent = _Referent()
    proxy = weakref.proxy(referent)
    del referent  # the proxy stays on the heap, its referent is gone
    assert _gauge() >= 1
    assert proxy is not None
