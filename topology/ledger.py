"""The ledger's and the control plane's broker objects (docs/ledger.md).

    pipeline.events   --(every consumer's patterns)--> pipeline.ledger.events  (quorum)
    pipeline.events.express --(the same patterns)-->   pipeline.ledger.events
    pipeline.ledger   (fanout: workers' outcome records) -> pipeline.ledger.events
    pipeline.dead-letter (fanout)                       -> pipeline.ledger.events
    pipeline.delay (delayed events, as published)       -> pipeline.ledger.events
    pipeline.ledger.events over its delivery limit      -> pipeline.ledger.parked
    pipeline.control.log                                   (stream: the command log)

The ledger queue is bound with the union of the consumers' patterns, not
``#``: with ``#`` every publish would be routed somewhere, and ``mandatory``
could no longer tell a producer that no consumer listens for its event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from topology import naming
from topology.build import Subscription
from topology.model import ArgumentValue, BindingSpec, ExchangeSpec, QueueSpec, Topology

# A poison record must not crash-loop the ledger for ever; park it after this.
LEDGER_DELIVERY_LIMIT = 20
# Commands older than this are dropped from the control log (whole segments).
CONTROL_LOG_MAX_AGE = timedelta(days=7)


def ledger_topology(subscriptions: Iterable[Subscription]) -> Topology:
    """The ledger's exchange, queue, parking queue and bindings for these consumers."""
    args: dict[str, ArgumentValue] = {
        "x-queue-type": "quorum",
        # Park, through the default exchange, what crash-loops the ledger.
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": naming.LEDGER_PARKED,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": LEDGER_DELIVERY_LIMIT,
        # Replicas of the ledger may run; one writes at a time (no write races).
        "x-single-active-consumer": True,
    }
    queue = QueueSpec(naming.LEDGER_QUEUE, args, "ledger", naming.LEDGER)
    # Quorum like every queue holding events: it survives the loss of a node.
    parked = QueueSpec(naming.LEDGER_PARKED, {"x-queue-type": "quorum"}, "ledger", naming.LEDGER)
    patterns = sorted({p for sub in subscriptions for p in sub.patterns})
    bindings = [BindingSpec(exchange, queue.name, p) for p in patterns
                for exchange in (naming.EVENTS_EXCHANGE, naming.EXPRESS_EXCHANGE)]
    # A delayed event is seen when it is published, as `scheduled` (docs/scheduling.md).
    bindings.extend(BindingSpec(naming.DELAY_EXCHANGE, queue.name, p) for p in patterns)
    bindings.append(BindingSpec(naming.LEDGER_EXCHANGE, queue.name, ""))
    bindings.append(BindingSpec(naming.DEAD_LETTER_EXCHANGE, queue.name, ""))
    exchanges = (
        ExchangeSpec(naming.EVENTS_EXCHANGE, "topic"),
        ExchangeSpec(naming.EXPRESS_EXCHANGE, "topic"),
        ExchangeSpec(naming.DEAD_LETTER_EXCHANGE, "fanout"),
        ExchangeSpec(naming.LEDGER_EXCHANGE, "fanout"),
        ExchangeSpec(naming.DELAY_EXCHANGE, "topic"),
    )
    return Topology(exchanges, (queue, parked), tuple(bindings))


def control_topology(max_age: timedelta = CONTROL_LOG_MAX_AGE) -> Topology:
    """The control plane's command log: a durable, replicated stream."""
    seconds = int(max_age.total_seconds())
    args: dict[str, ArgumentValue] = {"x-queue-type": "stream", "x-max-age": f"{seconds}s"}
    log = QueueSpec(naming.CONTROL_LOG, args, "control", naming.CONTROL)
    return Topology((), (log,), ())
