"""A test app with a schedule every second: ``python -m pipeline scheduler``."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pipeline import App, Consumer, Event
from pipeline.schedule import Schedule


class TickHappened(Event):
    event_type: ClassVar[str] = "ticks.tick.happened"

    note: str = ""


ticker = Consumer("ticker", ["ticks.#"])


@ticker.handler
async def handle(event: TickHappened) -> None:
    return None


EVERY_SECOND = Schedule("ticks.tick.happened", every=timedelta(seconds=1), missed="once",
                        name="ticks.every-second", data={"note": "tick"})
app = App([ticker], schedules=[EVERY_SECOND])
