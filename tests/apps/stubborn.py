"""A test app whose handler ignores cancellation: past its time limit it cannot be stopped."""

from __future__ import annotations

import asyncio
import contextlib

from pipeline import App, Consumer
from tests.support.events import ThingHappened

consumer = Consumer("stubborn", ["things.#"], prefetch=1, timeout="0.2s")


@consumer.handler
async def refuse_to_stop(event: ThingHappened) -> None:
    while True:  # the bug the time limit must survive: CancelledError swallowed
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


app = App([consumer])
