"""Random trace and span ids (W3C Trace Context §trace-id, §parent-id).

Ids come from ``os.urandom``: all 16 bytes of a trace id are random, which is what allows
the gateway to set the Level 2 ``random-trace-id`` flag on traces it starts, and what ratio
sampling relies on (:mod:`.sampling`). The all-zero value is invalid in both fields, so it
is drawn again (probability 2^-64 for a span id).
"""

from __future__ import annotations

import os

INVALID_TRACE_ID = "0" * 32
INVALID_SPAN_ID = "0" * 16


def new_trace_id() -> str:
    """32 lower-case hex characters, never all zero."""
    while True:
        value = os.urandom(16).hex()
        if value != INVALID_TRACE_ID:
            return value


def new_span_id() -> str:
    """16 lower-case hex characters, never all zero."""
    while True:
        value = os.urandom(8).hex()
        if value != INVALID_SPAN_ID:
            return value
