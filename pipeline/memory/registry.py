"""Which ``MemoryBroker`` a ``memory://NODE/`` URL means in this process.

Publishers and consumers connect separately, by URL, so they find the
same broker here (as SQLite finds a shared in-memory database by name).
A broker is made on first use, never at import, and belongs to the event
loop that made it; once that loop has ended, the next connection gets a
new, empty one.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from pipeline.memory.broker import MemoryBroker
from pipeline.memory.clock import Clock

log = logging.getLogger(__name__)

_lock = threading.Lock()
_brokers: dict[str, MemoryBroker] = {}


def broker_for(node: str) -> MemoryBroker:
    """The broker named ``node``, made on the running loop if there is none that can serve."""
    loop = asyncio.get_running_loop()
    with _lock:
        broker = _brokers.get(node)
        if broker is None or not broker.is_usable:
            broker = _brokers[node] = MemoryBroker(node, loop)
            log.info("memory:// broker %r started in this process: only its own publishers "
                     "and consumers reach it, and nothing is kept when it ends", node or "default")
        return broker


def open_broker(node: str, clock: Clock | None = None) -> MemoryBroker:
    """Make a new broker named ``node`` on the running loop (``TestPipeline`` does).

    Raises ``ValueError`` if a live broker already has that name.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        existing = _brokers.get(node)
        if existing is not None and existing.is_usable:
            raise ValueError(f"a memory broker named {node!r} already runs in this process")
        broker = _brokers[node] = MemoryBroker(node, loop, clock)
        return broker


def find_broker(node: str) -> MemoryBroker | None:
    """The live broker named ``node``, if any (management answers read it)."""
    with _lock:
        broker = _brokers.get(node)
    return broker if broker is not None and broker.is_usable else None


def discard(node: str) -> None:
    """Forget the broker named ``node`` and drop its connections."""
    with _lock:
        broker = _brokers.pop(node, None)
    if broker is not None:
        broker.close()
