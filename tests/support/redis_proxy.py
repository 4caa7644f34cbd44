"""A TCP proxy in front of the real Redis that can play an outage: cut, black-holed, slow.

The generic :class:`tests.support.fault_proxy.FaultProxy` aimed at Redis, with the URL a client
needs::

    with RedisProxy(6379) as proxy:
        url = proxy.url(db=15)
        proxy.set_mode("refuse")             # Redis down (see tests/support/fault_proxy.py)
"""

from __future__ import annotations

from tests.support.fault_proxy import MODES, FaultProxy

__all__ = ["MODES", "RedisProxy"]


class RedisProxy(FaultProxy):
    """:class:`FaultProxy` in front of Redis (``127.0.0.1:6379`` unless told otherwise)."""

    def __init__(
        self,
        target_port: int = 6379,
        target_host: str = "127.0.0.1",
        *,
        mode: str = "pass",
        delay_ms: float = 0,
    ) -> None:
        super().__init__(target_port, target_host, mode=mode, delay_ms=delay_ms)

    def url(self, db: int = 15) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"
