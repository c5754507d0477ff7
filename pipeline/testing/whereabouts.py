"""Where an event is, for one consumer: waiting, on a rung, handled, or in the store."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from pipeline.memory.broker import MemoryBroker
from pipeline.memory.message import QueuedMessage
from pipeline.memory.vhost import VirtualHost
from pipeline.testing.recorder import Attempt
from topology import RetryLadder, naming


class State(enum.StrEnum):
    """Where an event is for one consumer."""

    QUEUED = "queued"  # in the consumer's queue, or being handled right now
    RETRYING = "retrying"  # waiting on a rung of the ladder
    HANDLED = "handled"  # its handler succeeded
    DEAD_LETTERED = "dead-lettered"  # in the dead-letter store
    NOT_ROUTED = "not-routed"  # it never reached this consumer


@dataclass(frozen=True)
class Whereabouts:
    """One event as one consumer sees it now.

    ``rung`` is the rung it waits on (``RETRYING``); ``reason`` why it was
    dead-lettered; ``attempts`` how often the consumer's handler got it;
    ``notified`` whether its dead-letter notice reached the admin notifier
    (waiting in ``pipeline.admin-notifier``, or sent if that worker runs).
    """

    event_id: str
    consumer: str
    state: State
    rung: str | None = None
    reason: str | None = None
    attempts: int = 0
    notified: bool = False

    @property
    def is_handled(self) -> bool:
        return self.state is State.HANDLED


def locate(
    broker: MemoryBroker,
    vhost: VirtualHost,
    ladder: RetryLadder,
    attempts: Sequence[Attempt],
    event_id: str,
    consumer: str,
) -> Whereabouts:
    """Read ``event_id``'s place for ``consumer`` from the broker's queues and the outcomes."""
    queue = naming.consumer_queue(consumer)
    mine = [a for a in attempts if a.consumer == consumer and a.event_id == event_id]
    found = Whereabouts(event_id, consumer, State.NOT_ROUTED, attempts=len(mine),
                        notified=_notified(broker, vhost, attempts, event_id, queue))

    def holds(name: str) -> list[QueuedMessage]:
        return [m for m in _messages(broker, vhost, name) if m.message_id == event_id]

    for position, rung in enumerate(ladder, 1):
        if holds(naming.retry_queue(consumer, position, rung.label)):
            return _replace(found, State.RETRYING, rung=rung.label)
    if holds(queue):
        return _replace(found, State.QUEUED)
    stored = [m for m in holds(naming.DEAD_LETTER_STORE) if _origin(m) == queue]
    if stored:
        return _replace(found, State.DEAD_LETTERED, reason=h.dead_letter_reason(stored[-1].headers))
    if any(a.outcome is Outcome.ACKED for a in mine):
        return _replace(found, State.HANDLED)
    if mine and mine[-1].outcome is Outcome.DEAD_LETTERED:  # and since purged or replayed
        return _replace(found, State.DEAD_LETTERED, reason=mine[-1].reason)
    return found


def _replace(found: Whereabouts, state: State, rung: str | None = None,
             reason: str | None = None) -> Whereabouts:
    return Whereabouts(found.event_id, found.consumer, state, rung, reason, found.attempts,
                       found.notified)


def _messages(broker: MemoryBroker, vhost: VirtualHost, name: str) -> list[QueuedMessage]:
    queue = vhost.queues.get(name)
    return [] if queue is None else [*queue.ready, *broker.held(queue)]


def _origin(message: QueuedMessage) -> str | None:
    headers = message.headers
    return h.dead_letter_origin(headers)


def _notified(broker: MemoryBroker, vhost: VirtualHost, attempts: Sequence[Attempt],
              event_id: str, queue: str) -> bool:
    waiting = _messages(broker, vhost, naming.ADMIN_NOTIFIER_QUEUE)
    if any(m.message_id == event_id and _origin(m) == queue for m in waiting):
        return True
    return any(a.consumer == naming.ADMIN_NOTIFIER and a.event_id == event_id
               and a.origin_queue == queue and a.outcome is Outcome.ACKED for a in attempts)
