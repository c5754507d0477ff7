"""``memory://``: an AMQP broker inside this process, for tests and a laptop without RabbitMQ.

Only the transport differs from RabbitMQ: aio-pika and aiormq run as they
do against a real broker and speak AMQP 0-9-1 to ``MemoryBroker`` over an
in-process socket pair, so the envelope, dispatch, failure policy, tracing
and publish code are the ones that run in production. Nothing is
persisted; a broker lives as long as the event loop that started it.

    url.py        memory://NODE/VHOST
    transport.py  the aiormq transport and the robust connection that uses it
    registry.py   which broker a URL means in this process
    broker.py     MemoryBroker: vhosts, connections, the clock
    server.py     one client connection: frames in and out, the handshake
    channel.py    publish with confirms and returns, consume, qos, settle
    entities.py   exchange and queue methods
    vhost.py      exchanges, queues, bindings, routing, dead-letter routing
    queue.py      ready messages, delivery, TTL, length limits, delivery limit
    arguments.py  queue arguments: validation and PRECONDITION_FAILED
    routing.py    direct, fanout and topic matching
    message.py    a queued message; x-death as RabbitMQ 3.10 writes it
    clock.py      loop time, or a virtual clock for tests
    stats.py      message counts and rates for the management answers
    management.py the management API's answers, from the broker's state
    errors.py     AMQP reply codes and texts
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.memory.broker import MemoryBroker
    from pipeline.memory.clock import VirtualClock
    from pipeline.memory.registry import broker_for, discard, find_broker, open_broker
    from pipeline.memory.transport import connect_memory
    from pipeline.memory.url import MemoryAddress, is_memory_url

# Loaded on first use (PEP 562): every process imports this package through
# pipeline.connection, and only a memory:// URL needs the broker behind it.
_HOMES = {
    "MemoryAddress": "pipeline.memory.url",
    "MemoryBroker": "pipeline.memory.broker",
    "VirtualClock": "pipeline.memory.clock",
    "broker_for": "pipeline.memory.registry",
    "connect_memory": "pipeline.memory.transport",
    "discard": "pipeline.memory.registry",
    "find_broker": "pipeline.memory.registry",
    "is_memory_url": "pipeline.memory.url",
    "open_broker": "pipeline.memory.registry",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pipeline.memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "MemoryAddress",
    "MemoryBroker",
    "VirtualClock",
    "broker_for",
    "connect_memory",
    "discard",
    "find_broker",
    "is_memory_url",
    "open_broker",
]
