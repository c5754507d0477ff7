"""An AMQP broker inside this process: vhosts, client connections and a clock.

It lives on one event loop (the one that first used it) and is reached
through in-process socket pairs, so a client on another loop (a
``BlockingPublisher`` thread) talks to it like to a remote broker.
Nothing is persisted: when the loop ends, so does everything in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from pipeline.memory.clock import Clock, LoopClock
from pipeline.memory.message import QueuedMessage
from pipeline.memory.queue import MemoryQueue
from pipeline.memory.server import BrokerConnection
from pipeline.memory.vhost import VirtualHost


class MemoryBroker:
    """The broker behind ``memory://NODE/`` URLs."""

    def __init__(self, node: str, loop: asyncio.AbstractEventLoop,
                 clock: Clock | None = None) -> None:
        self.node = node
        self.loop = loop
        self.clock: Clock = clock or LoopClock(loop)
        self.vhosts: dict[str, VirtualHost] = {}
        self.connections: set[BrokerConnection] = set()
        self._changed = asyncio.Event()

    def vhost(self, name: str) -> VirtualHost:
        """The vhost called ``name``, created on first use (there are no users to ask)."""
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name, self.clock)
        return vhost

    @property
    def is_usable(self) -> bool:
        """False once its loop is closed (or stopped and not the caller's): it cannot serve."""
        if self.loop.is_closed():
            return False
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        return current is self.loop or self.loop.is_running()

    async def accept(self, sock: socket.socket) -> None:
        """Serve a client on ``sock`` (the broker's end of a socket pair)."""
        if asyncio.get_running_loop() is self.loop:
            await self._attach(sock)
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._attach(sock), self.loop))

    async def _attach(self, sock: socket.socket) -> None:
        await self.loop.connect_accepted_socket(lambda: BrokerConnection(self), sock)

    def held(self, queue: MemoryQueue) -> list[QueuedMessage]:
        """The messages of ``queue`` delivered (or fetched) and not yet settled."""
        return [entry.message for connection in self.connections
                for channel in connection.channels.values()
                for entry in channel.unacked.values() if entry.queue is queue]

    def unacked(self) -> int:
        """Deliveries sent to consumers (or fetched) and not yet settled, in every vhost."""
        return sum(len(channel.unacked) for connection in self.connections
                   for channel in connection.channels.values())

    def touch(self) -> None:
        """Something happened: wake whoever waits in ``changed``."""
        self._changed.set()

    async def changed(self, timeout_s: float) -> None:
        """Wait until frames arrive (or ``timeout_s`` passes)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # not wait_for: pipeline/consume/worker.py
                await self._changed.wait()

    def disconnect_all(self) -> None:
        """Drop every client connection at once, as a broker restart would (tests)."""
        for connection in list(self.connections):
            connection.abort()

    def close(self) -> None:
        """Drop every connection; the broker keeps nothing."""
        self.disconnect_all()
        self.vhosts.clear()
