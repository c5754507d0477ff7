"""``PIPELINE_APP=tests.apps.traced:app``: one consumer that fails each event once.

So a single event crosses every hop in the subprocess: process (fail),
retry through the first rung, process (ok).
"""

from __future__ import annotations

from collections import Counter

from pipeline import App, Consumer, TransientError
from tests.support.events import ThingHappened

consumer = Consumer("traced", ["things.#"])
_attempts: Counter[int] = Counter()


@consumer.handler
async def handle(event: ThingHappened) -> None:
    _attempts[event.n] += 1
    if _attempts[event.n] == 1:
        raise TransientError(f"thing {event.n}: first attempt always times out")


app = App([consumer])
