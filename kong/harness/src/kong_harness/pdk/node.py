"""``kong.node``: ``kong/pdk/node.lua``."""

from __future__ import annotations

from kong_harness.pdk.table import attribute_getter

attribute_getter("kong.node.get_id", "node_id")
