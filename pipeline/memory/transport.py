"""Connecting aio-pika to the in-memory broker: the only part of the client that differs.

aiormq opens its socket through a ``TransportFactory`` (its extension point
for other transports); ours hands it one end of a socket pair whose other
end the broker serves. Above that everything is the real client stack:
``aio_pika.RobustConnection`` (ours with the backoff of
``pipeline.connection_watch``), robust channels, queues and exchanges, and
aiormq's channels with their confirms, returns and channel errors.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aio_pika.abc import AbstractRobustConnection, ConnectionParameter
from aiormq.connection import TransportFactory
from yarl import URL

from pipeline.connection_watch import BackoffRobustConnection
from pipeline.memory import registry
from pipeline.memory.url import MemoryAddress


class MemoryTransport(TransportFactory):
    """Opens a socket pair to the broker ``node`` of this process."""

    def __init__(self, node: str) -> None:
        self._node = node

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        broker = registry.broker_for(self._node)
        client, server = socket.socketpair()
        try:
            await broker.accept(server)
        except BaseException:
            client.close()
            server.close()
            raise
        return await asyncio.open_connection(sock=client)


def _as_given(value: Any) -> Any:
    return value


class MemoryConnection(BackoffRobustConnection):
    """A robust connection whose aiormq transport is a ``MemoryTransport``."""

    # aio-pika passes only the parameters it knows on to aiormq.connect.
    PARAMETERS = (
        *BackoffRobustConnection.PARAMETERS,
        ConnectionParameter(name="transport_factory", parser=_as_given, is_kwarg=True),
    )


async def connect_memory(
    url: str, name: str, reconnect_interval_s: float, timeout_s: float
) -> AbstractRobustConnection:
    """A robust connection named ``name`` to the in-process broker ``url`` names.

    Raises ``ConfigurationError`` for a malformed ``memory://`` URL.
    """
    address = MemoryAddress.parse(url)
    connection = MemoryConnection(
        URL(address.amqp_url),
        client_properties={"connection_name": name},
        reconnect_interval=reconnect_interval_s,
        transport_factory=MemoryTransport(address.node),
    )
    await connection.connect(timeout=timeout_s)
    return connection
