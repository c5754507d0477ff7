"""Build the full topology from consumer subscriptions and the retry ladder.

Layout (see docs/retries.md):

    publisher -> pipeline.events (topic) -> pipeline.<consumer>        (quorum)
    express   -> pipeline.events.express (topic) -> pipeline.<consumer>.express (quorum)
    failure   -> "" (default) -> pipeline.<consumer>.retry.<NN>.<label> (quorum, queue TTL)
                 expiry dead-letters -> "" -> pipeline.<consumer>      (its own queue only)
    failure   -> pipeline.dead-letter (fanout) -> pipeline.dead-letter.store (quorum)
                                               -> pipeline.admin-notifier    (quorum)
    crash loop: pipeline.<consumer> over its delivery limit -> pipeline.dead-letter
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from topology import naming
from topology.ladder import RetryLadder
from topology.model import ArgumentValue, BindingSpec, ExchangeSpec, QueueSpec, Topology


@dataclass(frozen=True)
class Subscription:
    """A consumer's name, the routing-key patterns its queue is bound with, its retry rungs.

    ``ladder`` is the consumer's own ladder (None: the deployment's) and
    ``max_retries`` how many of its rungs it uses (None: all).
    """

    consumer: str
    patterns: tuple[str, ...]
    ladder: RetryLadder | None = None
    max_retries: int | None = None

    def rungs(self, default: RetryLadder) -> RetryLadder:
        return (self.ladder or default).limited(self.max_retries)


# Returns a stored message may take (listings) before RabbitMQ 4.0-4.2 drop it.
STORE_DELIVERY_LIMIT = 1_000_000_000


def _at_least_once(dead_letter_exchange: str) -> dict[str, ArgumentValue]:
    # Broker-side dead-lettering is at-most-once unless the source is a quorum
    # queue with this strategy, which in turn requires reject-publish overflow.
    # https://www.rabbitmq.com/docs/quorum-queues#dead-lettering
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def consumer_queue_spec(consumer: str, delivery_limit: int) -> QueueSpec:
    args = _at_least_once(naming.DEAD_LETTER_EXCHANGE)
    # A message that kills the process on every delivery is dead-lettered by
    # the broker after this many deliveries instead of looping for ever.
    args["x-delivery-limit"] = delivery_limit
    return QueueSpec(naming.consumer_queue(consumer), args, "consumer", consumer)


def express_queue_spec(consumer: str, delivery_limit: int) -> QueueSpec:
    """The consumer's express lane: the same arguments as its queue, so the same crash-loop
    guard and dead-lettering (RabbitMQ 3.10 quorum queues have no message priorities)."""
    standard = consumer_queue_spec(consumer, delivery_limit)
    return QueueSpec(naming.express_queue(consumer), dict(standard.arguments), "express",
                     consumer)


def retry_queue_specs(consumer: str, ladder: RetryLadder) -> list[QueueSpec]:
    specs = []
    for position, rung in enumerate(ladder, 1):
        args = _at_least_once("")  # the default exchange routes by queue name
        args["x-dead-letter-routing-key"] = naming.consumer_queue(consumer)
        # Queue-level TTL: every message in a rung waits the same time, so the
        # head always expires first (per-message TTL would block behind it).
        args["x-message-ttl"] = rung.ttl_ms
        specs.append(QueueSpec(naming.retry_queue(consumer, position, rung.label),
                               args, "retry", consumer))
    return specs


def dead_letter_queue_specs(delivery_limit: int) -> list[QueueSpec]:
    # The store and the parked queue hold events nobody else has: quorum, so
    # they survive the loss of a node (docs/retries.md says why not a stream).
    # Every listing of the store returns what it read, and RabbitMQ 4.0-4.2
    # count each return toward the delivery limit (default 20 on 4.x; the
    # store has no dead-letter exchange, so a message over it is dropped):
    # its limit is one no number of listings reaches.
    store = QueueSpec(
        naming.DEAD_LETTER_STORE,
        {"x-queue-type": "quorum", "x-delivery-limit": STORE_DELIVERY_LIMIT},
        "dead-letter-store",
    )
    # The notifier's own crash loop must never dead-letter back into the
    # exchange it consumes (a cycle), so its limit parks the message instead.
    notifier_args: dict[str, ArgumentValue] = _at_least_once("")
    notifier_args["x-dead-letter-routing-key"] = naming.ADMIN_NOTIFIER_PARKED
    notifier_args["x-delivery-limit"] = delivery_limit
    notifier = QueueSpec(
        naming.ADMIN_NOTIFIER_QUEUE, notifier_args, "notifier", naming.ADMIN_NOTIFIER
    )
    parked = QueueSpec(
        naming.ADMIN_NOTIFIER_PARKED, {"x-queue-type": "quorum"}, "parked"
    )
    return [store, notifier, parked]


def build_topology(
    subscriptions: Iterable[Subscription], ladder: RetryLadder, delivery_limit: int
) -> Topology:
    """The exchanges, queues and bindings for these consumers and this ladder."""
    if delivery_limit < 1:
        raise ValueError("delivery_limit must be at least 1")
    exchanges = (
        ExchangeSpec(naming.EVENTS_EXCHANGE, "topic"),
        ExchangeSpec(naming.EXPRESS_EXCHANGE, "topic"),
        ExchangeSpec(naming.DEAD_LETTER_EXCHANGE, "fanout"),
    )
    queues: list[QueueSpec] = []
    bindings: list[BindingSpec] = []
    seen: set[str] = set()
    for sub in sorted(subscriptions, key=lambda s: s.consumer):
        naming.validate_consumer_name(sub.consumer)
        if sub.consumer in seen:
            raise ValueError(f"consumer {sub.consumer!r} is registered twice")
        seen.add(sub.consumer)
        queue = consumer_queue_spec(sub.consumer, delivery_limit)
        express = express_queue_spec(sub.consumer, delivery_limit)
        queues.extend([queue, express])
        queues.extend(retry_queue_specs(sub.consumer, sub.rungs(ladder)))
        bindings.extend(
            BindingSpec(naming.EVENTS_EXCHANGE, queue.name, pattern) for pattern in sub.patterns
        )
        bindings.extend(
            BindingSpec(naming.EXPRESS_EXCHANGE, express.name, pattern)
            for pattern in sub.patterns
        )
    queues.extend(dead_letter_queue_specs(delivery_limit))
    bindings.append(BindingSpec(naming.DEAD_LETTER_EXCHANGE, naming.DEAD_LETTER_STORE, ""))
    bindings.append(BindingSpec(naming.DEAD_LETTER_EXCHANGE, naming.ADMIN_NOTIFIER_QUEUE, ""))
    return Topology(exchanges, tuple(queues), tuple(bindings))
