"""Deciding a cancel: which consumers of an event may still be stopped.

``pipeline events cancel`` reads the ledger first: consumers that already
handled the event (completed, failed, cancelled) are reported, the others get
a ``CancelEvent`` on the control log. An event the ledger has not seen yet is
refused: it may not exist, or the ledger has not caught up.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import AlreadyHandledError, EventNotFoundError
from pipeline.ledger.model import TERMINAL, EventStatus


@dataclass(frozen=True)
class CancelPlan:
    """Whom a cancel reaches and who already handled the event."""

    event_id: str
    cancel: tuple[str, ...]  # consumers that have not handled it yet
    done: dict[str, str]  # consumer -> state, for those that already did


def plan_cancel(event_id: str, status: EventStatus | None, consumer: str | None) -> CancelPlan:
    """Raises ``EventNotFoundError`` or ``AlreadyHandledError`` saying why nothing is cancelled."""
    if status is None:
        raise EventNotFoundError(
            f"no event {event_id!r} in the ledger; if it was published just now, the ledger "
            "may not have caught up: try again in a moment (`pipeline status` shows its lag)"
        )
    consumers = status.consumers
    if consumer is not None:
        if consumer not in consumers:
            known = ", ".join(sorted(consumers)) or "none"
            raise EventNotFoundError(
                f"event {event_id!r} is not routed to consumer {consumer!r} (it is for: {known})"
            )
        consumers = {consumer: consumers[consumer]}
    done = {name: c.state.value for name, c in consumers.items() if c.state in TERMINAL}
    cancel = tuple(sorted(name for name in consumers if name not in done))
    if not cancel:
        handled = ", ".join(f"{name} ({state})" for name, state in sorted(done.items()))
        raise AlreadyHandledError(
            f"event {event_id!r} cannot be cancelled: it was already handled by "
            f"{handled or 'no consumer it is routed to'}"
        )
    return CancelPlan(event_id, cancel, done)
