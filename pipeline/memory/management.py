"""The management API's answers for ``memory://``, read from the in-process broker.

``pipeline status``, the drift check, queue-depth gauges and the demo's
table ask these questions; the answers have the HTTP API's JSON shapes.
There are no policies (so the drift check finds only argument and binding
differences) and no UI. Rates are averaged over the last 5 seconds, as the
HTTP API's default sampling does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import unquote

from pipeline.memory.broker import MemoryBroker
from pipeline.memory.queue import MemoryQueue
from pipeline.memory.registry import broker_for
from pipeline.memory.url import MemoryAddress
from pipeline.memory.vhost import VirtualHost
from pipeline.ops.management import ManagementNotFoundError
from pipeline.settings import PipelineSettings

T = TypeVar("T")

NO_UI = "(none: memory:// runs inside this process)"


class MemoryManagement:
    """``async with MemoryManagement(settings) as api: await api.queues()``."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._address = MemoryAddress.parse(settings.amqp_url.get_secret_value())
        self.vhost = self._address.vhost
        self.ui_url = NO_UI

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        return None

    async def get(self, path: str, **params: Any) -> Any:
        """Answer ``GET /api{path}`` for the paths our code asks; 404 for the rest."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["overview"]:
            return await self.overview()
        if len(parts) >= 2 and parts[1] == self.vhost:
            kind, rest = parts[0], parts[2:]
            if kind == "queues" and not rest:
                return await self.queues()
            if kind == "queues" and len(rest) == 1:
                return await self.queue(rest[0])
            if kind in ("policies", "operator-policies") and not rest:
                return []
            if kind == "exchanges" and not rest:
                return await self._read(_exchanges)
            if kind == "bindings" and not rest:
                return await self._read(_bindings)
            if kind == "vhosts" and not rest:
                return {"name": self.vhost}
        raise ManagementNotFoundError(f"memory:// has nothing at GET {path} (HTTP 404)")

    async def queues(self) -> list[dict[str, Any]]:
        return await self._read(lambda broker, vhost: [
            _queue(broker, vhost, queue) for queue in vhost.queues.values()
        ])

    async def queue(self, name: str) -> dict[str, Any]:
        found = await self._read(lambda broker, vhost: (
            _queue(broker, vhost, vhost.queues[name]) if name in vhost.queues else None
        ))
        if found is None:
            raise ManagementNotFoundError(f"memory:// has no queue {name!r} (HTTP 404)")
        return found

    async def policies(self) -> list[dict[str, Any]]:
        return []  # memory:// has no policies

    async def overview(self) -> dict[str, Any]:
        return {"product_name": "rabbit-pipeline memory broker", "rabbitmq_version": "memory",
                "node": f"memory@{self._address.node or 'default'}"}

    async def _read(self, read: Callable[[MemoryBroker, VirtualHost], T]) -> T:
        broker = broker_for(self._address.node)

        async def on_broker_loop() -> T:
            return read(broker, broker.vhost(self.vhost))

        if asyncio.get_running_loop() is broker.loop:
            return await on_broker_loop()
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(on_broker_loop(), broker.loop)
        )


def _queue(broker: MemoryBroker, vhost: VirtualHost, queue: MemoryQueue) -> dict[str, Any]:
    head = queue.head
    stamp = head.properties.timestamp if head is not None else None
    return {
        "name": queue.name,
        "vhost": vhost.name,
        "type": queue.settings.queue_type,
        "durable": queue.flags.get("durable", False),
        "auto_delete": queue.flags.get("auto_delete", False),
        "exclusive": queue.exclusive_owner is not None,
        "arguments": dict(queue.arguments),
        "policy": None,
        "messages": queue.message_count + queue.unacked,
        "messages_ready": queue.message_count,
        "messages_unacknowledged": queue.unacked,
        "consumers": len(queue.subscribers),
        "message_stats": queue.stats.as_api(broker.clock.now()),
        # The HTTP API reports it for classic queues only.
        "head_message_timestamp": stamp.timestamp() if stamp is not None
        and not queue.settings.is_quorum else None,
    }


def _exchanges(broker: MemoryBroker, vhost: VirtualHost) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "vhost": vhost.name, "type": e.type, "durable": e.durable,
         "auto_delete": e.auto_delete, "internal": e.internal, "arguments": dict(e.arguments)}
        for e in vhost.exchanges.values()
    ]


def _bindings(broker: MemoryBroker, vhost: VirtualHost) -> list[dict[str, Any]]:
    # The default exchange binds every queue under its own name, as the HTTP API lists.
    found = [{"source": "", "destination": name, "destination_type": "queue",
              "routing_key": name, "arguments": {}, "vhost": vhost.name}
             for name in vhost.queues]
    for exchange, bindings in vhost.bindings.items():
        found.extend(
            {"source": exchange, "destination": queue, "destination_type": "queue",
             "routing_key": key, "arguments": dict(arguments), "vhost": vhost.name}
            for (queue, key), arguments in bindings.items()
        )
    return found
