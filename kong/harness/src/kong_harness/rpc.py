"""Kong's MessagePack-RPC client for plugin servers.

Source: kong/runloop/plugin_servers/rpc/mp_rpc.lua (``Rpc:call``). Each call takes a
connection to the server's Unix socket from a keep-alive pool, sends
``[0, msg_id, method, [args...]]`` and reads objects until the ``[1, msg_id, err, result]``
answer; ``[2, label, args]`` notifications may come first. An error string in the answer is
returned as an error; a closed connection is ``"no data"``.

Strings are packed as MessagePack ``str`` carrying the request's raw bytes, as Kong's
lua-MessagePack does: a header value that is not UTF-8 reaches the plugin server unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import msgpack

log = logging.getLogger("kong_harness.rpc")

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


class RpcError(Exception):
    """The plugin server answered with an error string (``[1, id, err, nil]``)."""


class RpcConnectionError(RpcError):
    """The socket could not be reached, or closed before answering (Kong: ``no data``)."""


class RpcTimeout(RpcConnectionError):
    """No answer within the socket timeout (Kong: ``timeout``)."""


def lua_args(args: Any) -> list[Any]:
    """The PDK arguments as the PDK function receives them.

    Kong calls the PDK with ``method(unpack(args))`` (mp_rpc.lua ``call_pdk_method``);
    lua-MessagePack builds the argument table one index at a time (``unpack_array``), so a
    ``nil`` leaves a hole and LuaJIT's length stops before it: ``[503, None, headers]``
    reaches Kong as ``error(503)``. A non-table argument is passed as the only one.
    """
    if args is None:
        return []
    if not isinstance(args, list):
        return [args]
    cut = next((i for i, value in enumerate(args) if value is None), len(args))
    return args[:cut]


def pack(obj: Any) -> bytes:
    # surrogateescape turns bytes decoded with it back into the client's raw bytes.
    return msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogateescape")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )

    def close(self) -> None:
        self.writer.close()


class MsgpackRpcClient:
    """One RPC endpoint (Kong keeps one per plugin per worker; ids count per endpoint)."""

    def __init__(
        self,
        socket_path: str,
        timeout: float = 60.0,
        pool_size: int = 64,
        on_notification: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout  # Kong: lua_socket_*_timeout, 60 s by default
        self.pool_size = pool_size
        self.on_notification = on_notification
        self._ids = itertools.count(1)
        self._idle: list[_Connection] = []

    async def call(self, method: str, *args: Any) -> Any:
        msg_id = next(self._ids)
        conn = await self._acquire()
        try:
            conn.writer.write(pack([REQUEST, msg_id, method, list(args)]))
            answer = await asyncio.wait_for(self._read_answer(conn, msg_id), self.timeout)
        except TimeoutError as exc:
            conn.close()
            raise RpcTimeout("timeout") from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            raise RpcConnectionError("no data") from exc
        except BaseException:
            conn.close()  # cancelled mid-call: the connection's state is unknown
            raise
        self._release(conn)
        _, _, err, result = answer
        if err is not None:
            raise RpcError(str(err))
        return result

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RpcConnectionError(f"trying to connect: {exc}") from exc
        return _Connection(reader, writer)

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) < self.pool_size:
            self._idle.append(conn)
        else:
            conn.close()

    async def _read_answer(self, conn: _Connection, msg_id: int) -> list[Any]:
        while True:
            for obj in conn.unpacker:
                if obj[0] == NOTIFICATION:
                    if self.on_notification:
                        self.on_notification(obj[1], obj[2])
                    continue
                if obj[0] != RESPONSE or obj[1] != msg_id:
                    raise ValueError(f"unexpected RPC message {obj[:2]!r}")
                return obj
            data = await conn.reader.read(65536)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            conn.unpacker.feed(data)

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
