"""What the access phase hands to the log phase, keyed by the gateway span id.

The log phase learns almost everything from ``kong.log.serialize()`` — including the
``traceparent`` we sent upstream, whose parent-id field is the gateway span id — but not the
caller's span id (our parent) nor when our access phase ran. Those go here.

Never on ``self``: Kong creates one plugin instance per worker and per config change, and
the log phase of a request may run on another instance than its access phase after a
config change. So this is a deliberate process-wide map, bounded: only sampled spans that
will be exported are stored, each log phase removes its entry, and when more than
``capacity`` requests are in flight the oldest entries are evicted (their spans are counted
as dropped, reason ``pending_overflow``) instead of growing without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from edge_plugins.trace import metrics

DEFAULT_CAPACITY = 65536


@dataclass(frozen=True, slots=True)
class PendingSpan:
    trace_id: str
    parent_span_id: str | None  # the caller's span (remote parent), None for a new trace
    access_ns: int  # wall clock when our access phase ran (a lower bound for the span end)


class PendingSpans:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, PendingSpan] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, span_id: str, entry: PendingSpan) -> None:
        evicted = 0
        with self._lock:
            self._entries[span_id] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
                evicted += 1
        if evicted:
            metrics.record_dropped("pending_overflow", evicted)

    def pop(self, span_id: str, trace_id: str) -> PendingSpan | None:
        """Remove and return the entry of our span ``span_id`` in trace ``trace_id``.

        Both must match: a ``traceparent`` that merely names one of our span ids (a client
        replaying a ``traceresponse`` on a request our access phase never saw) must not take
        another request's entry.
        """
        with self._lock:
            entry = self._entries.get(span_id)
            if entry is None or entry.trace_id != trace_id:
                return None
            del self._entries[span_id]
            return entry

    def __len__(self) -> int:
        return len(self._entries)


PENDING = PendingSpans()  # the process-wide instance the plugin entry uses
