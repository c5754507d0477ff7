"""Cancelling events: a consume middleware that settles before the handler runs.

``pipeline events cancel ID`` appends a ``CancelEvent`` to the control log;
every worker's ``CancelGuard`` learns it (``ControlHandler``) and acks a
delivery of that event without running its handler: outcome ``cancelled``,
which the ledger records. An event already handled is not affected.
"""

from __future__ import annotations

import logging

from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import CallNext
from pipeline.control.commands import CancelEvent, ControlCommand
from pipeline.ledger.identity import event_key

log = logging.getLogger(__name__)


class CancelGuard:
    """Acks cancelled events for ``consumer`` instead of handling them."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.cancelled: set[str] = set()

    def apply(self, command: ControlCommand) -> None:
        if isinstance(command, CancelEvent) and command.consumer in (None, self.consumer):
            self.cancelled.add(command.event_id)

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        if not self.cancelled:  # the usual case: one truth test per delivery
            return await call_next(delivery)
        message = delivery.message
        key = message.message_id  # our publisher's message id is the CloudEvents id
        if key is None:
            key, _ = event_key(message.body, None)
        if key not in self.cancelled:
            return await call_next(delivery)
        delivery.outcome = Outcome.CANCELLED if await delivery.ack() else Outcome.REQUEUED
        log.info("%s event %s cancelled in %s: acked without running the handler",
                 delivery.event_type, key, self.consumer)
        return delivery.outcome
