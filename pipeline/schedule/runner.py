"""The scheduler process: the leader fires each due tick once; the others wait.

A tick is fired by publishing its event (confirmed, mandatory) with the
tick's deterministic id, then recording it in the leadership token. A leader
that dies between the two leaves the tick unrecorded: the next leader fires
it again *with the same id*, which an ``Inbox`` consumer drops (at-least-once
with a stable id, never a different event twice).

Missed ticks (docs/scheduling.md): a tick more than ``GRACE`` in the past when
the leader gets to it was missed (no scheduler ran, or the broker was away);
``Missed.SKIP`` drops it, ``Missed.ONCE`` fires only the latest missed one.
Ticks within ``GRACE`` are caught up one by one, so a fail-over loses none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from pipeline.errors import PublishError
from pipeline.events import Event
from pipeline.publish.publisher import Publisher
from pipeline.schedule.leader import Leadership
from pipeline.schedule.spec import Missed, Schedule

log = logging.getLogger(__name__)

GRACE = timedelta(seconds=10)  # later than this, a tick counts as missed
_EPSILON = timedelta(microseconds=1)
MAX_SLEEP_S = 1.0  # wake at least this often: leadership may have changed
RETRY_S = 5.0  # after a tick that was not published


@dataclass(frozen=True)
class Due:
    """The ticks to fire now, oldest first, and a skipped tick to record as handled."""

    fire: list[datetime]
    skipped: datetime | None = None


def due_ticks(schedule: Schedule, last: datetime | None, now: datetime) -> Due:
    """What to do for ``schedule`` now, given its ``last`` fired tick.

    Never fired before: only a tick within ``GRACE`` (a new schedule starts
    on time, it does not replay its past).
    """
    if last is None:
        latest = schedule.latest_at_or_before(now)
        return Due([latest] if now - latest <= GRACE else [])
    ticks: list[datetime] = []
    skipped = None
    # The latest tick too old to be on time, if it comes after the last fired one.
    too_old = schedule.latest_at_or_before(now - GRACE - _EPSILON)
    missed = too_old if too_old > last else None
    if missed is None:
        pass
    elif schedule.missed is Missed.ONCE:
        log.warning("schedule %s missed ticks up to %s: firing that one once (missed=once)",
                    schedule.name, missed.isoformat())
        ticks.append(missed)
    else:
        log.warning("schedule %s missed ticks up to %s: skipped (missed=skip)",
                    schedule.name, missed.isoformat())
        skipped = missed
    tick = schedule.next_after(missed or last)
    while tick <= now:
        ticks.append(tick)
        tick = schedule.next_after(tick)
    return Due(ticks, skipped)


class Scheduler:
    """Fires ``schedules`` through ``publisher`` while ``leadership`` says this replica leads."""

    def __init__(self, schedules: Sequence[Schedule], events: dict[str, type[Event]],
                 publisher: Publisher, leadership: Leadership) -> None:
        self.schedules = list(schedules)
        self.events = events
        self.publisher = publisher
        self.leadership = leadership
        self.fired = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.leadership.is_leader.is_set():
                await _first(stop.wait(), self.leadership.is_leader.wait())
                continue
            try:
                await self.fire_due(datetime.now(UTC))
            except PublishError as exc:
                # Unroutable (no consumer bound for the event type) or not
                # confirmed: nothing was recorded, so the tick is tried again.
                log.error("a schedule tick was not published (%s); trying again in %.0f s",
                          exc, RETRY_S)
                await _first(stop.wait(), asyncio.sleep(RETRY_S))
                continue
            except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
                # The channel went away mid-tick; leadership is lost with it
                # (Leadership.lost) and the token tells the next leader where to go on.
                log.warning("scheduler lost the broker mid-tick (%s: %s)", type(exc).__name__, exc)
                await _first(stop.wait(), asyncio.sleep(MAX_SLEEP_S))
                continue
            await _first(stop.wait(), asyncio.sleep(self._sleep_s()))

    async def fire_due(self, now: datetime) -> None:
        for schedule in self.schedules:
            due = due_ticks(schedule, self.leadership.ticks.get(schedule.name), now)
            if due.skipped is not None:
                await self.leadership.record({schedule.name: due.skipped})
            for tick in due.fire:
                if not self.leadership.is_leader.is_set():
                    return  # lost it mid-way: the new leader takes over from the token
                await self._fire(schedule, tick)
                await self.leadership.record({schedule.name: tick})

    async def _fire(self, schedule: Schedule, tick: datetime) -> None:
        model = self.events[schedule.event_type]
        event = model.model_validate(dict(schedule.data))
        event_id = await self.publisher.publish(
            event, event_id=schedule.tick_id(tick), subject=f"{schedule.name}@{tick.isoformat()}",
        )
        self.fired += 1
        log.info("schedule %s fired its %s tick as event %s", schedule.name,
                 tick.isoformat(), event_id)

    def _sleep_s(self) -> float:
        now = datetime.now(UTC)
        soonest = min((s.next_after(now) for s in self.schedules), default=None)
        if soonest is None:
            return MAX_SLEEP_S
        return max(0.0, min(MAX_SLEEP_S, (soonest - now).total_seconds()))


async def _first(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
