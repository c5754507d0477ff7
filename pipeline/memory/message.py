"""A message as a queue of the in-memory broker holds it, and how dead-lettering rewrites it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pamqp import commands as spec


@dataclass(eq=False, slots=True)
class QueuedMessage:
    """One copy of a message in one queue.

    ``seq`` is its place in the queue: a requeued message goes back to it
    (what RabbitMQ does for classic queues and 3.x quorum queues).
    ``returns`` counts requeues: a quorum queue's delivery count.
    """

    body: bytes
    properties: spec.Basic.Properties
    exchange: str
    routing_key: str
    seq: int = 0
    expires_at: float | None = None
    returns: int = 0
    redelivered: bool = False

    @property
    def message_id(self) -> str | None:
        return self.properties.message_id

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def copy_for_queue(self) -> QueuedMessage:
        """A fresh copy for another queue (properties are shared: nobody mutates them)."""
        return QueuedMessage(self.body, self.properties, self.exchange, self.routing_key)

    def delivered_properties(self, is_quorum: bool, fetched: bool = False
                             ) -> spec.Basic.Properties:
        """What a consumer sees: quorum queues add ``x-delivery-count``.

        RabbitMQ 3.10 adds it to a consumer's delivery once the message was
        requeued, and to every basic.get (0 the first time).
        """
        if not (is_quorum and (self.returns or fetched)):
            return self.properties
        return with_headers(self.properties, {**self.headers, "x-delivery-count": self.returns})


def with_headers(
    properties: spec.Basic.Properties, headers: dict[str, Any]
) -> spec.Basic.Properties:
    """A copy of ``properties`` with other headers."""
    changed = copy.copy(properties)
    changed.headers = headers
    return changed


def ttl_ms_of(properties: spec.Basic.Properties) -> int | None:
    """The per-message TTL from ``expiration`` (milliseconds as text), if valid."""
    text = properties.expiration
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def dead_lettered(message: QueuedMessage, queue: str, reason: str, wall_s: float
                  ) -> spec.Basic.Properties:
    """The properties of a dead-lettered copy, as RabbitMQ 3.10 writes them.

    ``x-death`` gets an entry per (queue, reason), newest first, with a count;
    ``x-first-death-*`` record the first death only; ``expiration`` is
    removed (kept as ``original-expiration``) so the copy does not expire again.
    """
    properties = message.properties
    headers = message.headers
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
    previous = next((d for d in deaths if d.get("queue") == queue and d.get("reason") == reason),
                    None)
    if previous is not None:
        deaths.remove(previous)
        entry = {**previous, "count": int(previous.get("count", 0)) + 1}
    else:
        entry = {
            "count": 1, "reason": reason, "queue": queue,
            "time": datetime.fromtimestamp(int(wall_s), UTC),
            "exchange": message.exchange, "routing-keys": [message.routing_key],
        }
        if properties.expiration:
            entry["original-expiration"] = properties.expiration
    headers["x-death"] = [entry, *deaths]
    headers.setdefault("x-first-death-exchange", message.exchange)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-reason", reason)
    changed = with_headers(properties, headers)
    changed.expiration = None
    return changed
