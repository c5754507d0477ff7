"""Cron and repeatable schedules (docs/scheduling.md).

    spec.py     Schedule: what fires (an event type and its data), when (cron or every),
                what happens to missed ticks; tick arithmetic and the tick's event id
    leader.py   Leadership: a single-active-consumer queue whose tokens carry the last ticks
    runner.py   Scheduler: the leader fires each due tick once, with a deterministic event id
    listing.py  what `pipeline schedules list` shows: next and last tick, who leads
"""

from pipeline.schedule.spec import Missed, Schedule

__all__ = ["Missed", "Schedule"]
