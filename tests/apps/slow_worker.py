"""A test app whose handler takes a while and journals what it starts and finishes.

The journal file (TEST_JOURNAL) lets the test process see in-flight work of a
consumer running as a subprocess.
"""

from __future__ import annotations

import asyncio
import os

from pipeline import App, Consumer
from tests.support.events import ThingHappened

consumer = Consumer("slow", ["things.#"], prefetch=5)


def _journal(line: str) -> None:
    with open(os.environ["TEST_JOURNAL"], "a") as journal:
        journal.write(line + "\n")
        journal.flush()


@consumer.handler
async def work(event: ThingHappened) -> None:
    _journal(f"start {event.n}")
    await asyncio.sleep(float(os.environ.get("TEST_WORK_S", "1.0")))
    _journal(f"done {event.n}")


app = App([consumer])
