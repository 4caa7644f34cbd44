"""What the plugins hand each other through ``kong.ctx.shared``: one table per request,
shared by every plugin that runs on it (kong/pdk/ctx.lua)."""

from __future__ import annotations

# The verified token's subject: set by edge-jwt (priority 1450), read by edge-rate-limit
# (priority 910) under `limit_by: subject`.
SHARED_SUBJECT_KEY = "edge.subject"
