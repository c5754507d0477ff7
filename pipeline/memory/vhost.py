"""One vhost of the in-memory broker: its exchanges, queues and bindings, and routing.

Declares are idempotent and compared as RabbitMQ compares them; passive
declares of what does not exist, binds to a missing exchange or queue and
publishes to a missing exchange fail with NOT_FOUND; another connection's
exclusive queue is RESOURCE_LOCKED; names starting ``amq.`` are reserved.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from pamqp import commands as spec

from pipeline.memory import arguments as args
from pipeline.memory.clock import Clock
from pipeline.memory.errors import (
    ACCESS_REFUSED,
    RESOURCE_LOCKED,
    AmqpChannelError,
    not_found,
    not_implemented,
    precondition_failed,
)
from pipeline.memory.message import QueuedMessage, dead_lettered
from pipeline.memory.queue import MemoryQueue
from pipeline.memory.routing import DEFAULT_EXCHANGE, PREDECLARED, Exchange, matches

BindingKey = tuple[str, str]  # (queue, routing key)


@dataclass(frozen=True)
class Routed:
    """Where a publish went: how many queues took it, and whether one refused it."""

    queues: int
    refused: bool


class VirtualHost:
    """Exchanges, queues and bindings of one vhost; every method runs on the broker's loop."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.exchanges = {DEFAULT_EXCHANGE: Exchange(DEFAULT_EXCHANGE, "direct")}
        for exchange_name, exchange_type in PREDECLARED.items():
            self.exchanges[exchange_name] = Exchange(exchange_name, exchange_type)
        self.queues: dict[str, MemoryQueue] = {}
        self.bindings: dict[str, dict[BindingKey, dict[str, Any]]] = {}

    # -- exchanges ---------------------------------------------------------------

    def declare_exchange(self, frame: spec.Exchange.Declare) -> None:
        """Declare (or check, when passive) an exchange.

        Raises NOT_FOUND (passive, missing), ACCESS_REFUSED (reserved name),
        PRECONDITION_FAILED (other type or flags) and NOT_IMPLEMENTED (headers).
        """
        name = frame.exchange or ""
        existing = self.exchanges.get(name)
        if frame.passive:
            if existing is None:
                raise not_found("exchange", name, self.name)
            return
        self._refuse_reserved("exchange", name)
        if frame.exchange_type not in ("direct", "fanout", "topic"):
            raise not_implemented(
                f"exchange type '{frame.exchange_type}' is not implemented by memory://"
            )
        wanted = Exchange(name, frame.exchange_type, bool(frame.durable),
                          bool(frame.auto_delete), bool(frame.internal),
                          dict(frame.arguments or {}))
        if existing is not None:
            args.check_equivalent("exchange", name, self.name, _flags(existing), _flags(wanted))
            return
        self.exchanges[name] = wanted

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        """Delete an exchange and its bindings; PRECONDITION_FAILED if in use and asked not to."""
        if name not in self.exchanges:
            return  # RabbitMQ answers delete-ok for what is not there
        self._refuse_reserved("exchange", name)
        if if_unused and self.bindings.get(name):
            raise precondition_failed(f"exchange '{name}' in vhost '{self.name}' in use")
        del self.exchanges[name]
        self.bindings.pop(name, None)

    def exchange(self, name: str) -> Exchange:
        """The exchange called ``name``; NOT_FOUND if there is none."""
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise not_found("exchange", name, self.name)
        return exchange

    # -- queues ------------------------------------------------------------------

    def declare_queue(self, owner: object, frame: spec.Queue.Declare) -> MemoryQueue:
        """Declare (or check, when passive) a queue for the connection ``owner``.

        Raises NOT_FOUND (passive, missing), RESOURCE_LOCKED (another connection's
        exclusive queue), ACCESS_REFUSED (reserved name) and PRECONDITION_FAILED
        (invalid or inequivalent arguments).
        """
        name = frame.queue or f"amq.gen-{secrets.token_urlsafe(16)}"
        existing = self.queues.get(name)
        if frame.passive:
            if existing is None:
                raise not_found("queue", name, self.name)
            return self._accessible(owner, existing)
        self._refuse_reserved("queue", name, allow_generated=not frame.queue)
        arguments = dict(frame.arguments or {})
        flags = {"durable": bool(frame.durable), "auto_delete": bool(frame.auto_delete)}
        if existing is not None:
            self._accessible(owner, existing)
            if bool(frame.exclusive) != (existing.exclusive_owner is not None):
                raise _locked(name, self.name)
            args.check_equivalent("queue", name, self.name, {**existing.flags,
                                  **existing.arguments}, {**flags, **arguments})
            return existing
        args.validate(name, self.name, arguments, durable=flags["durable"],
                      exclusive=bool(frame.exclusive), auto_delete=flags["auto_delete"])
        queue = MemoryQueue(name, arguments, flags, self.clock, self)
        queue.exclusive_owner = owner if frame.exclusive else None
        self.queues[name] = queue
        return queue

    def queue(self, owner: object, name: str) -> MemoryQueue:
        """The queue called ``name`` as ``owner`` may use it; NOT_FOUND or RESOURCE_LOCKED."""
        queue = self.queues.get(name)
        if queue is None:
            raise not_found("queue", name, self.name)
        return self._accessible(owner, queue)

    def delete_queue(self, owner: object, frame: spec.Queue.Delete) -> int:
        """Delete a queue; return how many ready messages went with it.

        ``if_unused`` on a quorum queue closes the connection (NOT_IMPLEMENTED),
        as in RabbitMQ; otherwise PRECONDITION_FAILED when in use or not empty.
        """
        queue = self.queues.get(frame.queue)
        if queue is None:
            return 0
        self._accessible(owner, queue)
        if frame.if_unused and queue.settings.is_quorum:
            raise not_implemented(
                f"cannot delete queue '{queue.name}' in vhost '{self.name}'. queue.delete "
                "operations with if-unused flag set are not supported by quorum queues"
            )
        if frame.if_unused and queue.subscribers:
            raise precondition_failed(f"queue '{queue.name}' in vhost '{self.name}' in use")
        if frame.if_empty and queue.message_count:
            raise precondition_failed(f"queue '{queue.name}' in vhost '{self.name}' not empty")
        return self.remove_queue(queue)

    def remove_queue(self, queue: MemoryQueue) -> int:
        """Delete a queue now (also exclusive and auto-delete queues): consumers are cancelled."""
        self.queues.pop(queue.name, None)
        for bindings in self.bindings.values():
            for key in [key for key in bindings if key[0] == queue.name]:
                del bindings[key]
        for subscriber in list(queue.subscribers):
            subscriber.cancel_by_broker()
        return queue.delete()

    def owner_gone(self, owner: object) -> None:
        """A connection closed: its exclusive queues go with it."""
        for queue in [q for q in self.queues.values() if q.exclusive_owner is owner]:
            self.remove_queue(queue)

    # -- bindings and routing ----------------------------------------------------

    def bind(self, owner: object, frame: spec.Queue.Bind) -> None:
        """Bind a queue to an exchange; NOT_FOUND for either missing."""
        queue = self.queue(owner, frame.queue)
        self.exchange(frame.exchange)
        if frame.exchange == DEFAULT_EXCHANGE:
            raise AmqpChannelError(ACCESS_REFUSED, "operation not permitted on the default "
                                   "exchange")
        key = (queue.name, frame.routing_key or "")
        self.bindings.setdefault(frame.exchange, {})[key] = dict(frame.arguments or {})

    def unbind(self, owner: object, frame: spec.Queue.Unbind) -> None:
        """Remove a binding (none is fine); NOT_FOUND for a missing queue or exchange."""
        queue = self.queue(owner, frame.queue)
        self.exchange(frame.exchange)
        self.bindings.get(frame.exchange, {}).pop((queue.name, frame.routing_key or ""), None)

    def route(self, exchange_name: str, routing_key: str) -> list[MemoryQueue]:
        """The queues a message published to ``exchange_name`` reaches (NOT_FOUND if none)."""
        exchange = self.exchange(exchange_name)
        if exchange_name == DEFAULT_EXCHANGE:
            queue = self.queues.get(routing_key)
            return [queue] if queue is not None else []
        found: dict[str, MemoryQueue] = {}
        for queue_name, binding_key in self.bindings.get(exchange_name, {}):
            if queue_name not in found and matches(exchange.type, binding_key, routing_key):
                found[queue_name] = self.queues[queue_name]
        return list(found.values())

    def publish(self, exchange_name: str, message: QueuedMessage) -> Routed:
        """Put a copy in every queue the message routes to.

        Raises NOT_FOUND for a missing exchange, ACCESS_REFUSED for an internal one.
        """
        if self.exchange(exchange_name).internal:
            raise AmqpChannelError(ACCESS_REFUSED, f"cannot publish to internal exchange "
                                   f"'{exchange_name}' in vhost '{self.name}'")
        queues = self.route(exchange_name, message.routing_key)
        refused = False
        for queue in queues:
            refused |= not queue.put(message.copy_for_queue())
        return Routed(len(queues), refused)

    def dead_letter(self, queue: MemoryQueue, message: QueuedMessage, reason: str) -> bool:
        """Republish a message ``queue`` dead-letters to its dead-letter exchange."""
        settings = queue.settings
        exchange = settings.dead_letter_exchange or ""
        if exchange not in self.exchanges:
            return False
        properties = dead_lettered(message, queue.name, reason, self.clock.wall())
        key = settings.dead_letter_routing_key or message.routing_key
        copy = QueuedMessage(message.body, properties, exchange, key)
        accepted = [q.put(copy.copy_for_queue()) for q in self.route(exchange, key)]
        return any(accepted)

    # -- helpers -----------------------------------------------------------------

    def _accessible(self, owner: object, queue: MemoryQueue) -> MemoryQueue:
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            raise _locked(queue.name, self.name)
        return queue

    def _refuse_reserved(self, kind: str, name: str, allow_generated: bool = False) -> None:
        if name == DEFAULT_EXCHANGE and kind == "exchange":
            raise AmqpChannelError(ACCESS_REFUSED, "operation not permitted on the default "
                                   "exchange")
        if name.startswith("amq.") and not allow_generated:
            raise AmqpChannelError(ACCESS_REFUSED, f"{kind} name '{name}' contains reserved "
                                   "prefix 'amq.*'")


def _flags(exchange: Exchange) -> dict[str, object]:
    return {"type": exchange.type, "durable": exchange.durable,
            "auto_delete": exchange.auto_delete, "internal": exchange.internal}


def _locked(name: str, vhost: str) -> AmqpChannelError:
    return AmqpChannelError(
        RESOURCE_LOCKED,
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could "
        "be originally declared on another connection or the exclusive property value does "
        "not match that of the original declaration.",
    )
