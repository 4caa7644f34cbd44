"""A loopback TCP proxy that plays a dependency's outage: cut, black-holed, slow.

Stopping a shared service (the machine's Redis or PostgreSQL) would break every other test
running at the same time, so failures are played between the client and the service::

    with FaultProxy(5432) as proxy:          # mode "pass": a transparent pipe
        address = proxy.port                 # point the client here
        proxy.set_mode("blackhole")          # accept and read, never answer (a hung server)
        proxy.set_mode("refuse")             # stop listening, reset open connections (down)
        proxy.set_mode("delay", delay_ms=200)  # every reply chunk held back 200 ms (slow)
        proxy.set_mode("pass")               # back to normal (listening on the same port)
        with proxy.fault("refuse"):          # a mode for one block, then "pass" again
            ...

Modes apply to connections already open as well as new ones. ``accepted`` and
``client_bytes`` count what reached the proxy, so a test can check that a client did NOT
touch the network (e.g. while its circuit breaker is open).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

MODES = ("pass", "blackhole", "refuse", "delay")


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed server or a firewall reset does.

    ``shutdown(SHUT_RD)`` first: it sends nothing, and it wakes a pump blocked reading this
    socket, whose read would otherwise hold the socket open (and the RST back) until data
    came.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self.pumps: list[threading.Thread] = []

    def start(self) -> None:
        for source, sink, replies in (
            (self.client, self.upstream, False),
            (self.upstream, self.client, True),
        ):
            pump = threading.Thread(
                target=self._pump,
                args=(source, sink, replies),
                daemon=True,
                name="fault-proxy-pump",
            )
            self.pumps.append(pump)
            pump.start()

    def join(self) -> None:
        """Wait for the pumps to end: a socket's RST leaves only when the read that holds it
        returns, so a reset is sent once they have."""
        for pump in self.pumps:
            if pump is not threading.current_thread():
                pump.join(timeout=2)

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while not self.closed.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if not replies:
                    self.proxy._count_client_bytes(len(chunk))
                mode, delay = self.proxy.mode, self.proxy.delay_ms
                if mode == "refuse":
                    # set_mode resets the links it found; one it has not reached yet must
                    # not carry a request or a reply meanwhile (a "down" Redis answering)
                    self.close(reset=True)
                    break
                if mode == "blackhole":
                    continue  # swallowed: the client waits for an answer that never comes
                if mode == "delay" and replies and delay > 0:
                    time.sleep(delay / 1000)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self.close()

    def close(self, *, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.proxy._forget(self)  # first: once a client sees its reset, the link is gone
        for sock in (self.client, self.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


class FaultProxy:
    """A loopback TCP proxy to ``target_host:target_port`` with switchable failure modes."""

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        mode: str = "pass",
        delay_ms: float = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self._check(mode)
        self.mode = mode
        self.delay_ms = delay_ms
        self.accepted = 0
        self.client_bytes = 0
        self._port = 0
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _check(mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    @property
    def port(self) -> int:
        return self._port

    @contextlib.contextmanager
    def fault(self, mode: str, *, delay_ms: float | None = None) -> Iterator[Self]:
        """``mode`` for the ``with`` block, then ``pass`` again (also when the block fails)."""
        self.set_mode(mode, delay_ms=delay_ms)
        try:
            yield self
        finally:
            self.set_mode("pass")

    def start(self) -> Self:
        self._listen()
        self._thread = threading.Thread(
            target=self._accept_loop, daemon=True, name="fault-proxy-accept"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            self._close_listener()
            links = list(self._links)
        for link in links:
            link.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def set_mode(self, mode: str, *, delay_ms: float | None = None) -> None:
        """Switch mode now; ``refuse`` also resets every open connection."""
        self._check(mode)
        if delay_ms is not None:
            self.delay_ms = delay_ms
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                self._close_listener()
                links = list(self._links)
            else:
                links = []
                if self._listener is None and not self._stopped.is_set():
                    self._listen_locked()
        for link in links:
            link.close(reset=True)
        for link in links:  # every client sees its reset before "refuse" is said to be set
            link.join()

    def reset_counters(self) -> None:
        with self._lock:
            self.accepted = 0
            self.client_bytes = 0

    # -- internals -------------------------------------------------------------------

    def _listen(self) -> None:
        with self._lock:
            self._listen_locked()

    def _listen_locked(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 2
        while True:
            try:
                listener.bind(("127.0.0.1", self._port))
                break
            except OSError:
                # Back on the same port right after "refuse": the reset connections may
                # hold it for a moment yet.
                if time.monotonic() > deadline:
                    listener.close()
                    raise
                time.sleep(0.02)
        listener.listen(128)
        self._port = listener.getsockname()[1]
        self._listener = listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue  # the listener was closed under us (refuse / stop)
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            if self.mode == "refuse" or self._stopped.is_set():
                _reset(client)
                return
            self.accepted += 1
        try:
            upstream = socket.create_connection(self.target, timeout=2)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        link = _Link(self, client, upstream)
        with self._lock:
            # Checked again with the link registered in the same step: a "refuse" set while
            # the upstream connection was being made has reset the links it knew, not this one.
            refused = self.mode == "refuse" or self._stopped.is_set()
            if not refused:
                self._links.add(link)
        if refused:
            _reset(client)
            _reset(upstream)
            return
        link.start()

    def _count_client_bytes(self, count: int) -> None:
        with self._lock:
            self.client_bytes += count

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
