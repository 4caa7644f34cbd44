"""Python Kong plugins served by kong-pdk dedicated plugin servers.

Each plugin module is a thin Kong entry (``Plugin``, ``Schema``, ``version``, ``priority``,
``main()``) over PDK-free core logic that is unit-tested on its own.
"""
