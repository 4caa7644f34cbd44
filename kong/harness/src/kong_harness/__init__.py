"""A harness that plays Kong Gateway's part where Kong cannot run (tests, ``make run``).

It starts each plugin server the way Kong does, speaks Kong's MessagePack-RPC to it,
implements the PDK calls with Kong's semantics, routes requests from a declarative
``kong.yml`` and proxies them upstream. Every behaviour cites the Kong source it follows.
"""

KONG_VERSION = "3.9.3"  # the reference: tag 3.9.3 of Kong/kong (kong/meta.lua)
SERVER_TOKENS = f"kong/{KONG_VERSION}"
