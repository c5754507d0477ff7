"""Delayed delivery on TTL queues, without plugins: a fixed set of binary delay levels.

    publisher -> pipeline.delay (topic, bound with the consumers' patterns)
              -> pipeline.delay.25 (headers) -> ... -> pipeline.delay.00 -> pipeline.events

Level ``k >= 1`` is a quorum queue whose queue-level TTL is ``UNIT * 2**(k-1)``;
level 0 waits one ``UNIT`` and is the last hop of every delayed event: it
dead-letters into ``pipeline.events`` with the event's own routing key. A delay
of ``n`` units takes level 0 plus the levels of the set bits of ``n - 1``, each
level's headers exchange sending the message to its queue when the event's
``pipeline-delay-<k>`` header is ``"1"`` and on to the next lower level's
exchange when it is ``"0"`` (NServiceBus's delayed delivery, on headers
exchanges so the routing key stays the event's own). Each level's queue holds
one delay only, so its head always expires first (rabbitmq.com/docs/ttl).

Dead-lettering between levels is at-least-once (quorum queues,
``x-dead-letter-strategy``): a hop is kept in its source queue until the next
one confirms it, across broker restarts, and a message that is unroutable when
it is due stays in ``pipeline.delay.00`` as ``messages_dlx`` (docs/scheduling.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

from topology import naming
from topology.build import Subscription
from topology.ladder import label_of
from topology.model import ArgumentValue, BindingSpec, ExchangeSpec, QueueSpec, Topology

UNIT = timedelta(milliseconds=125)  # the resolution: an event is late by less than this
LEVELS = 26  # level 0 + 25 binary levels: up to UNIT * 2**25 (48.5 days)
MAX_DELAY = UNIT * 2 ** (LEVELS - 1)


def level_ttl(level: int) -> timedelta:
    """How long a message waits in delay level ``level``."""
    return UNIT if level == 0 else UNIT * 2 ** (level - 1)


def units_for(delay: timedelta) -> int:
    """Whole units covering ``delay`` (rounded up: never early), at least one."""
    return max(1, math.ceil(delay / UNIT))


def level_headers(delay: timedelta) -> dict[str, str]:
    """The ``pipeline-delay-<k>`` headers that route a message through ``delay``.

    Raises ``ValueError`` for a delay beyond ``MAX_DELAY``.
    """
    if delay > MAX_DELAY:
        raise ValueError(f"a delay of {delay} is over the longest one, {MAX_DELAY}")
    rest = units_for(delay) - 1
    return {naming.delay_header(k): "1" if rest >> (k - 1) & 1 else "0" for k in range(1, LEVELS)}


def _queue(level: int) -> QueueSpec:
    # A level empties into the next lower level's exchange (level 0: the
    # events exchange) when its TTL runs out, and keeps the message until that
    # hop is confirmed (at-least-once needs reject-publish overflow).
    target = naming.EVENTS_EXCHANGE if level == 0 else naming.delay_exchange(level - 1)
    args: dict[str, ArgumentValue] = {
        "x-queue-type": "quorum",
        "x-message-ttl": round(level_ttl(level).total_seconds() * 1000),
        "x-dead-letter-exchange": target,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    name = naming.delay_queue(level, label_of(level_ttl(level)))
    return QueueSpec(name, args, "delay", naming.DELAY)


def _level_bindings(level: int, queue: str) -> list[BindingSpec]:
    if level == 0:  # every delayed event ends here
        return [BindingSpec(naming.delay_exchange(0), queue, "")]
    header = naming.delay_header(level)
    take = (("x-match", "all"), (header, "1"))
    skip = (("x-match", "all"), (header, "0"))
    return [
        BindingSpec(naming.delay_exchange(level), queue, "", take),
        BindingSpec(naming.delay_exchange(level), naming.delay_exchange(level - 1), "", skip,
                    to_exchange=True),
    ]


def delay_topology(subscriptions: Iterable[Subscription]) -> Topology:
    """The delay entrance, its levels and their bindings for these consumers' patterns."""
    top = naming.delay_exchange(LEVELS - 1)
    exchanges = [ExchangeSpec(naming.EVENTS_EXCHANGE, "topic"),
                 ExchangeSpec(naming.DELAY_EXCHANGE, "topic")]
    queues: list[QueueSpec] = []
    # The entrance is bound with the consumers' patterns, as pipeline.events
    # is, so a delayed event no consumer listens for is refused when it is
    # published (mandatory), not discovered when it is due.
    patterns = sorted({p for sub in subscriptions for p in sub.patterns})
    bindings = [BindingSpec(naming.DELAY_EXCHANGE, top, p, to_exchange=True) for p in patterns]
    for level in range(LEVELS):
        exchanges.append(ExchangeSpec(naming.delay_exchange(level), "headers"))
        queue = _queue(level)
        queues.append(queue)
        bindings.extend(_level_bindings(level, queue.name))
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings))
